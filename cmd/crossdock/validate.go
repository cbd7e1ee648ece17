package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/crossdock/crossdock/config"
	"github.com/crossdock/crossdock/secret"
)

// runValidate checks a configuration file as serve would, without starting.
func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` to check")
	secretsDir := fs.String("secrets-dir", "", "`directory` of secret files that ${secret:NAME} references resolve from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"validate needs --config FILE"}
	}
	cfg, err := config.Load(*path, configChecks(&secret.Store{Dir: *secretsDir}))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d topics, %d subscriptions)\n", *path, len(cfg.Topics), len(cfg.Subscriptions))
	return nil
}
