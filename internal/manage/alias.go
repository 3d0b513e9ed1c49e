package manage

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/mailstead/mailstead/internal/address"
	"github.com/mailstead/mailstead/internal/control"
	"github.com/mailstead/mailstead/internal/routing"
	"github.com/mailstead/mailstead/internal/store"
)

// AliasArgs are the arguments of the alias operations.
type AliasArgs struct {
	Address        string   `json:"address"`
	Targets        []string `json:"targets,omitempty"`
	Note           string   `json:"note,omitempty"`
	ForwardMode    string   `json:"forward_mode,omitempty"`
	DisabledAction string   `json:"disabled_action,omitempty"`
	Owner          string   `json:"owner,omitempty"`
	// For generate: the account it points at and the domain (default:
	// the account's).
	Account string `json:"account,omitempty"`
	Domain  string `json:"domain,omitempty"`
}

// AliasInfo describes an alias.
type AliasInfo struct {
	Address        string    `json:"address"`
	Targets        []string  `json:"targets"`
	Disabled       bool      `json:"disabled"`
	DisabledAction string    `json:"disabled_action"`
	Note           string    `json:"note,omitempty"`
	ForwardMode    string    `json:"forward_mode"`
	Owner          string    `json:"owner,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

func (o *Ops) registerAliases(r *control.Registry) {
	control.Register(r, "alias.add", o.AliasAdd)
	control.Register(r, "alias.list", o.AliasList)
	control.Register(r, "alias.del", o.AliasDel)
	control.Register(r, "alias.disable", o.AliasDisable)
	control.Register(r, "alias.enable", o.AliasEnable)
	control.Register(r, "alias.generate", o.AliasGenerate)
	control.Register(r, "alias.check", o.AliasCheck)
}

func (o *Ops) aliasInfo(ctx context.Context, a store.Alias) AliasInfo {
	ai := AliasInfo{Address: a.Address, Targets: a.Targets, Disabled: a.Disabled, DisabledAction: a.DisabledAction, Note: a.Note, ForwardMode: a.ForwardMode, CreatedAt: a.CreatedAt}
	if a.OwnerAccountID != 0 {
		if acc, err := o.St.GetAccountByID(ctx, a.OwnerAccountID); err == nil {
			ai.Owner = acc.Address
		}
	}
	return ai
}

func normTargets(ts []string) ([]string, error) {
	var out []string
	for _, t := range ts {
		for _, p := range strings.Split(t, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if strings.HasPrefix(p, "http:") {
				out = append(out, p)
				continue
			}
			a, err := address.Parse(p)
			if err != nil {
				return nil, fmt.Errorf("target %q: %w", p, err)
			}
			out = append(out, a.String())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("an alias needs at least one target")
	}
	return out, nil
}

func (o *Ops) ownerID(ctx context.Context, owner string) (int64, error) {
	if owner == "" {
		return 0, nil
	}
	acc, err := o.get(ctx, owner)
	if err != nil {
		return 0, fmt.Errorf("owner: %w", err)
	}
	return acc.ID, nil
}

// AliasAdd creates an alias; warnings (e.g. a target that does not exist)
// come back in the result, errors refuse.
func (o *Ops) AliasAdd(ctx context.Context, a AliasArgs) (AliasResult, error) {
	addr, err := address.ParseAlias(a.Address)
	if err != nil {
		return AliasResult{}, err
	}
	targets, err := normTargets(a.Targets)
	if err != nil {
		return AliasResult{}, err
	}
	owner, err := o.ownerID(ctx, a.Owner)
	if err != nil {
		return AliasResult{}, err
	}
	al := store.Alias{Address: addr, Targets: targets, Note: a.Note, ForwardMode: a.ForwardMode, DisabledAction: a.DisabledAction, OwnerAccountID: owner}
	// Check the whole directory with the new alias in it: anything the
	// alias introduces that is an error (e.g. a loop through other
	// aliases) refuses it; warnings are reported.
	before, err := o.validateWith(ctx, nil)
	if err != nil {
		return AliasResult{}, err
	}
	after, err := o.validateWith(ctx, &al)
	if err != nil {
		return AliasResult{}, err
	}
	known := map[string]bool{}
	for _, p := range before {
		known[p.String()] = true
	}
	var warns []string
	for _, p := range after {
		if known[p.String()] {
			continue
		}
		if p.Error {
			return AliasResult{}, errors.New(p.String())
		}
		warns = append(warns, p.String())
	}
	got, err := o.St.AddAlias(ctx, al)
	switch {
	case errors.Is(err, store.ErrExists):
		return AliasResult{}, fmt.Errorf("alias %s already exists", addr)
	case errors.Is(err, store.ErrInvalid):
		return AliasResult{}, fmt.Errorf("%s is an account's address; an address is an account or an alias, not both", addr)
	case errors.Is(err, store.ErrNotFound):
		return AliasResult{}, fmt.Errorf("%s is not in a local domain", addr)
	case err != nil:
		return AliasResult{}, err
	}
	return AliasResult{Alias: o.aliasInfo(ctx, got), Warnings: warns}, nil
}

// AliasResult is an alias with the warnings about it.
type AliasResult struct {
	Alias    AliasInfo `json:"alias"`
	Warnings []string  `json:"warnings,omitempty"`
}

func (o *Ops) validateWith(ctx context.Context, extra *store.Alias) ([]routing.Problem, error) {
	ds, err := o.St.ListDomains(ctx)
	if err != nil {
		return nil, err
	}
	var domains []string
	for _, d := range ds {
		domains = append(domains, d.Name)
	}
	accs, err := o.St.ListAccounts(ctx, "")
	if err != nil {
		return nil, err
	}
	als, err := o.St.ListAliases(ctx, "")
	if err != nil {
		return nil, err
	}
	if extra != nil {
		als = append(als, *extra)
	}
	return routing.Validate(domains, accs, als), nil
}

// AliasCheck validates every alias in the store.
func (o *Ops) AliasCheck(ctx context.Context, _ struct{}) ([]string, error) {
	probs, err := o.validateWith(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, p := range probs {
		out = append(out, p.String())
	}
	return out, nil
}

func (o *Ops) AliasList(ctx context.Context, a DomainArgs) ([]AliasInfo, error) {
	dom := ""
	if a.Name != "" {
		d, err := address.Domain(a.Name)
		if err != nil {
			return nil, err
		}
		dom = d
	}
	als, err := o.St.ListAliases(ctx, dom)
	if err != nil {
		return nil, err
	}
	out := []AliasInfo{}
	for _, al := range als {
		out = append(out, o.aliasInfo(ctx, al))
	}
	return out, nil
}

func (o *Ops) getAlias(ctx context.Context, s string) (store.Alias, error) {
	addr, err := address.ParseAlias(s)
	if err != nil {
		return store.Alias{}, err
	}
	al, err := o.St.GetAlias(ctx, addr)
	if errors.Is(err, store.ErrNotFound) {
		return al, fmt.Errorf("no alias %s", addr)
	}
	return al, err
}

func (o *Ops) AliasDel(ctx context.Context, a AliasArgs) (struct{}, error) {
	al, err := o.getAlias(ctx, a.Address)
	if err != nil {
		return struct{}{}, err
	}
	return struct{}{}, o.St.DeleteAlias(ctx, al.Address)
}

func (o *Ops) AliasDisable(ctx context.Context, a AliasArgs) (AliasInfo, error) {
	al, err := o.getAlias(ctx, a.Address)
	if err != nil {
		return AliasInfo{}, err
	}
	al.Disabled = true
	if a.DisabledAction != "" {
		al.DisabledAction = a.DisabledAction
	}
	if err := o.St.UpdateAlias(ctx, al); err != nil {
		return AliasInfo{}, err
	}
	return o.aliasInfo(ctx, al), nil
}

func (o *Ops) AliasEnable(ctx context.Context, a AliasArgs) (AliasInfo, error) {
	al, err := o.getAlias(ctx, a.Address)
	if err != nil {
		return AliasInfo{}, err
	}
	al.Disabled = false
	if err := o.St.UpdateAlias(ctx, al); err != nil {
		return AliasInfo{}, err
	}
	return o.aliasInfo(ctx, al), nil
}

// AliasGenerate makes a random readable alias (word-word-NNN) that
// delivers to an account, e.g. for signing up at one website.
func (o *Ops) AliasGenerate(ctx context.Context, a AliasArgs) (AliasResult, error) {
	acc, err := o.get(ctx, a.Account)
	if err != nil {
		return AliasResult{}, err
	}
	dom := acc.Domain
	if a.Domain != "" {
		if dom, err = address.Domain(a.Domain); err != nil {
			return AliasResult{}, err
		}
	}
	for try := 0; try < 20; try++ {
		local := randomWord() + "-" + randomWord() + "-" + fmt.Sprintf("%03d", randInt(1000))
		res, err := o.AliasAdd(ctx, AliasArgs{Address: local + "@" + dom, Targets: []string{acc.Address}, Note: a.Note, ForwardMode: a.ForwardMode, Owner: acc.Address})
		if err != nil && strings.Contains(err.Error(), "already exists") {
			continue
		}
		return res, err
	}
	return AliasResult{}, errors.New("could not find a free alias name")
}

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

func randomWord() string { return words[randInt(len(words))] }

// words are short, common, unambiguous English words (easy to read out and
// type): 291 of them, so word-word-NNN has about 85 million combinations.
var words = strings.Fields(`
able acid aged also area army away baby back bake ball band bank base bath bear beat bell belt best bird blue boat body bold bone book boot born bowl
brave bread brick bring broad brown build bulb burn busy cake calm camp card care cart cash cast cave chalk chart chef chip city clay clean clear
cliff clock cloud coal coast coat code coin cold cook cool copper coral corn cost cotton craft crane crisp crow cube cycle daily dance dark dawn
deep deer desk dial dock dove draft dream drum duck dune dusk eagle early earth east echo edge eight elder elm ember empty equal even fable fair
fall farm fast fern field film final fire fish five flag flame flat fleet float flour flow foam fog fold folk forest fork fox frame fresh frost
fruit fuel gate gentle giant gift glad glass globe glow gold golf good grain grape grass green grove gull hall hand harbor hawk hazel heart heat
hedge hill hive honey hook hope horse hour husky iron island ivory jade jelly jolly juice kettle key kind kite lake lamp land large lark lava lawn
leaf lemon level light lily lime linen lion lucky lunar maple marble meadow melon mild mint moon moss mount music navy nest noble north novel oak
ocean olive onion orbit otter owl paddle palm paper park pearl pebble pepper piano pine plain plum polar pond poppy quiet rain raven reef ridge
river robin rock rose ruby sage sail salt sand satin scarf shell shore silk silver sky slate smooth snow solar spice spring spruce star stone storm
sugar summer sun swan swift table tea thunder tide tiger timber topaz tower trail tulip valley velvet violet walnut wave willow wind winter wolf
`)
