package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bam-dev/bam/internal/store"
	"github.com/bam-dev/bam/internal/store/storeurl"
)

func (a *app) migrateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the store's schema",
		Long: `migrate brings the store's schema to the version this bam knows, creating it
(and, for SQLite, the file and its directory) if needed. It is safe to run
again: a store already at that version is left as it is.`,
		Args: noArgs,
		RunE: a.body(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withStoreOpened(ctx, a.openStoreToMigrate, func(st store.Store) error {
				from, to, err := st.Migrate(ctx)
				if err != nil {
					return fmt.Errorf("migrate store %s: %w", storeurl.Redact(a.storeURL), err)
				}
				if from == to {
					fmt.Fprintf(a.stdout, "store %s already at version %d\n", storeurl.Redact(a.storeURL), to)
					return nil
				}
				fmt.Fprintf(a.stdout, "store %s migrated from version %d to %d\n", storeurl.Redact(a.storeURL), from, to)
				return nil
			})
		}),
	}
}
