//go:build bam_planted_bug

package planted

// SkipFence is true only in a build with the tag bam_planted_bug: the fence
// and the local lease deadline are ignored. Never ship such a build.
const SkipFence = true
