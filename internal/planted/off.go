//go:build !bam_planted_bug

package planted

// SkipFence is false in every normal build; see the package comment.
const SkipFence = false
