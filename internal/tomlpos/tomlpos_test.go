package tomlpos

import "testing"

func TestEditDistanceHints(t *testing.T) {
	keys := []string{"address", "name", "protocol", "tls", "proxy", "trusted_proxies"}
	for in, want := range map[string]string{
		"adress":         "address",
		"addrses":        "address",
		"Address":        "address",
		"nmae":           "name",
		"tsl":            "tls",
		"trusted_proxys": "trusted_proxies",
		"xyz":            "",
		"a":              "",
		"":               "",
	} {
		if got := Closest(in, keys); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance(kitten, sitting) = %d", d)
	}
	if d := editDistance("ab", "ba"); d != 1 {
		t.Errorf("transposition distance %d", d)
	}
}

func TestPosIndex(t *testing.T) {
	doc := "a = 1\n[t]\nb = \"x\"\n[[l]]\nc = [1, \"y\"]\n[[l]]\nd = { e = 2 }\n[l.sub]\nf = 3\n"
	x := Build([]byte(doc))
	for path, want := range map[string]Pos{
		"a":            {1, 5},
		"t.b":          {3, 5},
		"l[0].c":       {5, 1}, // arrays point at their key
		"l[0].c[1]":    {5, 9},
		"l[1].d.e":     {7, 11},
		"l[1].sub.f":   {9, 5},
		"l[1].missing": {6, 3}, // falls back to the [[l]] header
	} {
		got, ok := x.Lookup(path, false)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %v %v, want %v", path, got, ok, want)
		}
	}
	if _, ok := x.Lookup("zzz", false); ok {
		t.Error("lookup of an absent top-level key succeeded")
	}
}
