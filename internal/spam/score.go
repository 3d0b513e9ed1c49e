package spam

import (
	"math"
	"slices"
)

// Symbol is one finding that contributed to a score.
type Symbol struct {
	Name   string
	Score  float64
	Detail string // e.g. the list zone or HELO name; for logs
}

// Symbols of the built-in checks, the keys of Config.Weights. DNS lists
// have their own symbols (List.Name).
const (
	SymIprevFail      = "IPREV_FAIL"      // PTR name does not resolve back to the client
	SymIprevNoPTR     = "IPREV_NOPTR"     // no PTR record at all (permerror)
	SymIprevTempError = "IPREV_TEMPERROR" // reverse DNS could not be checked

	SymHeloInvalid         = "HELO_INVALID"          // not a syntactically valid name or literal
	SymHeloBareIP          = "HELO_BARE_IP"          // an IP address without [brackets]
	SymHeloLiteralMismatch = "HELO_LITERAL_MISMATCH" // [address] literal that is not the client's
	SymHeloNotFQDN         = "HELO_NOT_FQDN"         // a single label or a private TLD
	SymHeloOurs            = "HELO_OURS"             // claims our hostname or a local domain
	SymHeloNoDNS           = "HELO_NO_DNS"           // the name does not resolve

	SymSPFPass      = "SPF_PASS"
	SymSPFFail      = "SPF_FAIL"
	SymSPFSoftFail  = "SPF_SOFTFAIL"
	SymSPFPermError = "SPF_PERMERROR"
	SymDKIMPass     = "DKIM_PASS"
	SymDKIMFail     = "DKIM_FAIL"
	SymDMARCPass    = "DMARC_PASS"
	SymDMARCFail    = "DMARC_FAIL"
)

// DefaultWeights returns the default built-in weights. A listed DNSBL
// (typically 3–6 each) plus a bad HELO or missing reverse DNS reaches the
// junk threshold (5); a forged HELO with a failing DMARC does too.
func DefaultWeights() map[string]float64 {
	return map[string]float64{
		SymIprevFail:      1.5,
		SymIprevNoPTR:     2,
		SymIprevTempError: 0,

		SymHeloInvalid:         2,
		SymHeloBareIP:          2,
		SymHeloLiteralMismatch: 1.5,
		SymHeloNotFQDN:         1.5,
		SymHeloOurs:            4,
		SymHeloNoDNS:           1,

		SymSPFPass:      -0.5,
		SymSPFFail:      2.5,
		SymSPFSoftFail:  1,
		SymSPFPermError: 0.5,
		SymDKIMPass:     -0.5,
		SymDKIMFail:     1,
		SymDMARCPass:    -1,
		SymDMARCFail:    3.5,
	}
}

func knownSymbol(name string) bool {
	_, ok := DefaultWeights()[name]
	return ok
}

func symbolNames() []string {
	var out []string
	for k := range DefaultWeights() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// sumScore adds the symbols' scores, rounded to 1/100 so that printed
// and compared scores agree.
func sumScore(syms []Symbol) float64 {
	var s float64
	for _, sym := range syms {
		s += sym.Score
	}
	return math.Round(s*100) / 100
}
