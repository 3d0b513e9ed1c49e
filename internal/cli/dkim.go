package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/server"
)

type dkimCmd struct {
	Generate dkimGenerateCmd `cmd:"" help:"Create a DKIM key for a domain and print its DNS record."`
	Import   dkimImportCmd   `cmd:"" help:"Import a PEM private key (OpenDKIM, rspamd: PKCS#1 or PKCS#8)."`
	List     dkimListCmd     `cmd:"" help:"List a domain's DKIM keys and which one signs."`
}

type dkimKeyArgs struct {
	Domain   string `required:"" help:"The signing domain (d=)."`
	Selector string `required:"" help:"The selector (s=), e.g. a date like 2025a; a new one for each rotation."`
}

func (a dkimKeyArgs) domain() (string, error) {
	d, err := address.Domain(a.Domain)
	if err != nil {
		return "", fmt.Errorf("--domain: %w", err)
	}
	return d, nil
}

func printKeyRecord(g *globals, k *dkim.Key) error {
	txt, err := k.TXT()
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]string{"domain": k.Domain, "selector": k.Selector, "algorithm": k.Algo, "path": k.Path, "name": k.Selector + "._domainkey." + k.Domain + ".", "txt": txt})
	}
	fmt.Fprintf(g.stdout, "key: %s (%s, %d bits)\n\nPublish this DNS record:\n\n%s._domainkey.%s. IN TXT %s\n", k.Path, k.Algo, k.Bits, k.Selector, k.Domain, quoteTXT(txt))
	fmt.Fprintln(g.stdout, "\nThe newest RSA and the newest Ed25519 key sign unless [[outbound.dkim]] names a selector; publish the record before the key is used, and keep old records published for a few days after rotating.")
	return nil
}

// quoteTXT splits a TXT value into 255-byte strings as zone files need.
func quoteTXT(s string) string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, `"`+s[:255]+`"`)
		s = s[255:]
	}
	parts = append(parts, `"`+s+`"`)
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, "\n    ") + " )"
}

type dkimGenerateCmd struct {
	dkimKeyArgs
	Algo string `default:"rsa2048" enum:"rsa2048,rsa4096,ed25519" help:"Key type: rsa2048 (default; every verifier), rsa4096, or ed25519 (RFC 8463; sign with an RSA key too, not every verifier knows it)."`
}

func (c *dkimGenerateCmd) Run(g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	d, err := c.domain()
	if err != nil {
		return err
	}
	k, err := server.DKIMKeys(cfg).Generate(d, c.Selector, c.Algo)
	if err != nil {
		return err
	}
	return printKeyRecord(g, k)
}

type dkimImportCmd struct {
	dkimKeyArgs
	Key string `required:"" type:"path" help:"PEM private key file (\"-\" for standard input)."`
}

func (c *dkimImportCmd) Run(g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	d, err := c.domain()
	if err != nil {
		return err
	}
	var data []byte
	if c.Key == "-" {
		data, err = io.ReadAll(io.LimitReader(g.stdin, 64<<10))
	} else {
		data, err = os.ReadFile(c.Key)
	}
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	k, err := server.DKIMKeys(cfg).Import(d, c.Selector, data)
	if err != nil {
		return err
	}
	return printKeyRecord(g, k)
}

type dkimListCmd struct {
	Domain string `arg:"" help:"Domain."`
}

func (c *dkimListCmd) Run(g *globals) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	d, err := address.Domain(c.Domain)
	if err != nil {
		return err
	}
	keys := server.DKIMKeys(cfg)
	ks, err := keys.List(d)
	if err != nil {
		return err
	}
	active, _ := keys.Active(d)
	var rows [][]string
	for _, k := range ks {
		mark := ""
		for _, a := range active {
			if a.Selector == k.Selector {
				mark = "signing"
			}
		}
		rows = append(rows, []string{k.Selector, fmt.Sprintf("%s %d", k.Algo, k.Bits), k.Modified.Format("2006-01-02 15:04"), mark})
	}
	g.table("SELECTOR\tKEY\tCREATED\tACTIVE", rows)
	return nil
}
