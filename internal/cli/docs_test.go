package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestKubernetesDocsCommands holds the weft commands of docs/kubernetes.md
// to the CLI: each one's flags parse, and those that need no files or
// cluster (weft install, weft uninstall) run.
func TestKubernetesDocsCommands(t *testing.T) {
	data, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	var commands [][]string
	for _, b := range blocks {
		script := strings.ReplaceAll(b[1], "\\\n", " ")
		for _, line := range strings.Split(script, "\n") {
			for _, part := range strings.Split(line, "|") {
				f := strings.Fields(part)
				if len(f) > 1 && f[0] == "weft" && (f[1] == "install" || f[1] == "uninstall" || f[1] == "inject") {
					commands = append(commands, f[1:])
				}
			}
		}
	}
	if len(commands) < 6 {
		t.Fatalf("found %d weft commands in docs/kubernetes.md", len(commands))
	}
	for _, args := range commands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			root := NewRootCommand()
			cmd, rest, err := root.Find(args)
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Fatalf("flags: %v", err)
			}
			if cmd.Name() == "inject" || cmd.Flags().Changed("webhook-cert-dir") {
				return // they read files the docs' reader has
			}
			if out, err := run(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}
