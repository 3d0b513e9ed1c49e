package manage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailstead/mailstead/internal/dkim"
	"github.com/mailstead/mailstead/internal/store"
	"github.com/mailstead/mailstead/internal/store/sqlitestore"
)

func TestQueueOps(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var bounced []int64
	now := time.Now().Add(time.Hour)
	o := &QueueOps{St: st, Now: func() time.Time { return now }, Bounce: func(ctx context.Context, id int64, reason string) error {
		bounced = append(bounced, id)
		return st.QueueDelete(ctx, id)
	}}
	var ids []int64
	for _, dom := range []string{"a.example", "b.example", "c.example"} {
		d, err := st.Deliver(ctx, store.Delivery{Blob: bytes.NewReader([]byte("Subject: x\r\n\r\nx\r\n")), Queue: []store.QueueEntry{{
			From: "s@example.org", Transport: "smtp", Destination: dom, Recipients: []store.QueueRecipient{{Address: "r@" + dom}},
			NextAttempt: time.Now().Add(24 * time.Hour)}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d[0].QueueID)
	}
	list, err := o.List(ctx, struct{}{})
	if err != nil || len(list) != 3 || list[0].Destination != "a.example" || list[0].Recipients[0].Address != "r@a.example" {
		t.Fatalf("list %+v %v", list, err)
	}
	if _, err := o.Show(ctx, QueueArgs{IDs: []int64{999}}); err == nil {
		t.Fatal("show of a missing entry")
	}
	if _, err := o.Show(ctx, QueueArgs{}); err == nil {
		t.Fatal("show without ids")
	}
	if r, err := o.Hold(ctx, QueueArgs{IDs: ids[:1]}); err != nil || len(r.Changed) != 1 {
		t.Fatalf("hold %v %v", r, err)
	}
	if _, err := o.Retry(ctx, QueueArgs{IDs: ids[:1]}); err == nil {
		t.Fatal("retry of a held entry")
	}
	due, _ := st.QueueDue(ctx, now.Add(48*time.Hour), 10)
	if len(due) != 2 {
		t.Fatalf("held entry is due: %d", len(due))
	}
	if r, _ := o.Release(ctx, QueueArgs{All: true}); len(r.Changed) != 1 {
		t.Fatalf("release %+v", r)
	}
	if r, err := o.Retry(ctx, QueueArgs{All: true}); err != nil || len(r.Changed) != 3 {
		t.Fatalf("retry %+v %v", r, err)
	}
	due, _ = st.QueueDue(ctx, now, 10)
	if len(due) != 3 {
		t.Fatalf("after retry %d due now", len(due))
	}
	if r, err := o.BounceOp(ctx, QueueArgs{IDs: ids[1:2]}); err != nil || len(r.Changed) != 1 || len(bounced) != 1 {
		t.Fatalf("bounce %+v %v", r, err)
	}
	if r, err := o.Delete(ctx, QueueArgs{IDs: ids[2:]}); err != nil || len(r.Changed) != 1 {
		t.Fatalf("delete %+v %v", r, err)
	}
	if list, _ := o.List(ctx, struct{}{}); len(list) != 1 || list[0].ID != ids[0] {
		t.Fatalf("left %+v", list)
	}
}

// fakeDNS answers CheckDNSRecords from maps.
type fakeDNS struct {
	txt   map[string][]string
	mx    map[string][]*net.MX
	srv   map[string][]*net.SRV
	cname map[string]string
	ip    map[string][]net.IPAddr
	ptr   map[string][]string
}

func nx(name string) error { return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true} }

func (f *fakeDNS) LookupMX(_ context.Context, n string) ([]*net.MX, error) {
	if v, ok := f.mx[n]; ok {
		return v, nil
	}
	return nil, nx(n)
}
func (f *fakeDNS) LookupTXT(_ context.Context, n string) ([]string, error) {
	if v, ok := f.txt[n]; ok {
		return v, nil
	}
	return nil, nx(n)
}
func (f *fakeDNS) LookupSRV(_ context.Context, s, p, n string) (string, []*net.SRV, error) {
	k := "_" + s + "._" + p + "." + n
	if v, ok := f.srv[k]; ok {
		return k, v, nil
	}
	return "", nil, nx(k)
}
func (f *fakeDNS) LookupCNAME(_ context.Context, n string) (string, error) {
	if v, ok := f.cname[n]; ok {
		return v, nil
	}
	return "", nx(n)
}
func (f *fakeDNS) LookupAddr(_ context.Context, a string) ([]string, error) {
	if v, ok := f.ptr[a]; ok {
		return v, nil
	}
	return nil, nx(a)
}
func (f *fakeDNS) LookupIPAddr(_ context.Context, n string) ([]net.IPAddr, error) {
	if v, ok := f.ip[n]; ok {
		return v, nil
	}
	return nil, nx(n)
}

func TestDNSRecords(t *testing.T) {
	keys := dkim.Open(t.TempDir(), nil)
	k, err := keys.Generate("example.com", "s1", dkim.AlgoEd25519)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := DNSRecords(DNSInput{Domain: "example.com", Hostname: "mail.example.com", Keys: []*dkim.Key{k}, SendingIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]DNSRecord{}
	for _, r := range recs {
		byName[r.Type+" "+r.Name] = r
	}
	pub := k.Signer.Public().(ed25519.PublicKey)
	_ = pub
	for key, want := range map[string]string{
		"MX example.com.":                    "10 mail.example.com.",
		"TXT s1._domainkey.example.com.":     "v=DKIM1; k=ed25519; p=",
		"TXT _dmarc.example.com.":            "v=DMARC1; p=quarantine",
		"TXT _mta-sts.example.com.":          "v=STSv1; id=",
		"TXT _smtp._tls.example.com.":        "v=TLSRPTv1; rua=mailto:",
		"SRV _submissions._tcp.example.com.": "0 1 465 mail.example.com.",
		"SRV _imaps._tcp.example.com.":       "0 1 993 mail.example.com.",
		"CNAME autoconfig.example.com.":      "mail.example.com.",
		"PTR 1.2.0.192.in-addr.arpa.":        "mail.example.com.",
	} {
		if r, ok := byName[key]; !ok || !strings.HasPrefix(r.Value, want) {
			t.Errorf("%s: %+v, want %q", key, r, want)
		}
	}
	dkimTXT, _ := k.TXT()
	live := &fakeDNS{
		mx:    map[string][]*net.MX{"example.com": {{Host: "mail.example.com.", Pref: 10}}},
		txt:   map[string][]string{"s1._domainkey.example.com": {strings.ReplaceAll(dkimTXT, "; ", ";")}, "_dmarc.example.com": {"v=DMARC1; p=none"}, "example.com": {"google-site-verification=x"}},
		srv:   map[string][]*net.SRV{"_submissions._tcp.example.com": {{Target: "mail.example.com.", Port: 465, Priority: 0, Weight: 1}}},
		cname: map[string]string{"autoconfig.example.com": "mail.example.com."},
		ip:    map[string][]net.IPAddr{"mail.example.com": {{IP: net.ParseIP("192.0.2.1")}, {IP: net.ParseIP("2001:db8::1")}}},
		ptr:   map[string][]string{"192.0.2.1": {"mail.example.com."}, "2001:db8::1": {"host.provider.example."}},
	}
	checked := CheckDNSRecords(context.Background(), live, "mail.example.com", recs)
	got := map[string]string{}
	for _, r := range checked {
		got[r.Type+" "+r.Name] = r.Check
	}
	for key, want := range map[string]string{
		"MX example.com.":                                        "ok",
		"TXT example.com.":                                       "missing",
		"TXT s1._domainkey.example.com.":                         "ok",
		"TXT _dmarc.example.com.":                                "differs",
		"TXT _mta-sts.example.com.":                              "missing",
		"SRV _submissions._tcp.example.com.":                     "ok",
		"CNAME autoconfig.example.com.":                          "ok",
		"PTR 1.2.0.192.in-addr.arpa.":                            "ok",
		"PTR " + reverseName(netip.MustParseAddr("2001:db8::1")): "differs",
	} {
		if got[key] != want {
			t.Errorf("check %s = %q, want %q", key, got[key], want)
		}
	}
}
