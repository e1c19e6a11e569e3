package demo

import (
	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/demo/app"
)

func newWebCommand() *cobra.Command {
	var f serveFlags
	var cfg app.WebConfig
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Serve web (HTTP/1.1): the front page and GET /api/products",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInjector(f.faults)
			if err != nil {
				return err
			}
			cfg.Faults, cfg.Log = in, logger()
			web, err := app.NewWeb(cfg)
			if err != nil {
				return err
			}
			return f.run(cmd, in, web.Serve)
		},
	}
	f.register(cmd.Flags(), "127.0.0.1:8080")
	cmd.Flags().StringVar(&cfg.CatalogURL, "catalog-url", "http://127.0.0.1:8081", "catalog's base URL")
	cmd.Flags().BoolVar(&cfg.CatalogH2C, "catalog-h2c", false, "call catalog with HTTP/2 prior knowledge")
	cmd.Flags().StringVar(&cfg.AuditAddr, "audit-addr", "127.0.0.1:7000", "audit's address")
	cmd.Flags().DurationVar(&cfg.Timeout, "upstream-timeout", 0, "bound on each upstream call (default 5s)")
	return cmd
}

func newCatalogCommand() *cobra.Command {
	var f serveFlags
	var cfg app.CatalogConfig
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Serve catalog: GET /products, HTTP/1.1 (v1) or h2c (v2)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInjector(f.faults)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("h2c") {
				cfg.H2C = cfg.Version == "v2"
			}
			cfg.Faults, cfg.Log = in, logger()
			c, err := app.NewCatalog(cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			return f.run(cmd, in, c.Serve)
		},
	}
	f.register(cmd.Flags(), "127.0.0.1:8081")
	cmd.Flags().StringVar(&cfg.Version, "version", "v1", "version label; versions after v1 add ratings")
	cmd.Flags().BoolVar(&cfg.H2C, "h2c", false, "serve HTTP/2 with prior knowledge (default: true for v2)")
	cmd.Flags().StringVar(&cfg.StockAddr, "stock-addr", "127.0.0.1:9090", "stock's gRPC address")
	cmd.Flags().DurationVar(&cfg.StockTimeout, "stock-timeout", 0, "bound on each GetStock (default 2s)")
	return cmd
}

func newStockCommand() *cobra.Command {
	var f serveFlags
	var cfg app.StockConfig
	cmd := &cobra.Command{
		Use:   "stock",
		Short: "Serve stock (gRPC): GetStock and the streaming WatchStock",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInjector(f.faults)
			if err != nil {
				return err
			}
			cfg.Faults, cfg.Log = in, logger()
			return f.run(cmd, in, app.NewStock(cfg).Serve)
		},
	}
	f.register(cmd.Flags(), "127.0.0.1:9090")
	cmd.Flags().DurationVar(&cfg.WatchInterval, "watch-interval", 0, "WatchStock interval when the client names none (default 500ms)")
	return cmd
}

func newAuditCommand() *cobra.Command {
	var f serveFlags
	var cfg app.AuditConfig
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Serve audit (TCP): greets with \"" + app.AuditGreeting + "\", answers each line \"ok <n>\"",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := newInjector(f.faults)
			if err != nil {
				return err
			}
			cfg.Faults, cfg.Log = in, logger()
			return f.run(cmd, in, app.NewAudit(cfg).Serve)
		},
	}
	f.register(cmd.Flags(), "127.0.0.1:7000")
	return cmd
}
