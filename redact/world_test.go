package redact

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// This file holds the test's own model of the world: random populations,
// a brute-force recount of any cell, and a disclosure checker written
// independently of suppress.go (dense elimination modulo another prime,
// exact rationals for small systems, and the plain "margin minus the
// visible cells" attack on every line).

var epoch0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

type world struct {
	users  []string
	teams  []string
	events []Event
}

// genWorld makes a random population: 1–200 users, 1–20 teams of random
// sizes (many small), activity over 1–72 hours starting at a random hour.
func genWorld(rng *rand.Rand, maxEvents int) world {
	var w world
	nu := 1 + rng.IntN(200)
	nt := 1 + rng.IntN(20)
	for i := range nu {
		w.users = append(w.users, fmt.Sprintf("u%03dxxxxxxxxxxxxxxxxxxxxxx", i))
	}
	members := make([][]int, nt) // team -> users
	userTeams := make([][]int, nu)
	for t := range nt {
		w.teams = append(w.teams, fmt.Sprintf("team%02dxxxxxxxxxxxxxxxxxxxx", t))
		var size int
		switch rng.IntN(3) {
		case 0:
			size = 1 + rng.IntN(6) // small
		case 1:
			size = 1 + rng.IntN(15)
		default:
			size = 1 + rng.IntN(nu)
		}
		for _, u := range rng.Perm(nu)[:min(size, nu)] {
			members[t] = append(members[t], u)
			userTeams[u] = append(userTeams[u], t)
		}
	}
	hours := 1 + rng.IntN(72)
	start := epoch0.Add(time.Duration(rng.IntN(48)) * time.Hour)
	nev := 1 + rng.IntN(maxEvents)
	// Activity per user: some users are much busier than others.
	weight := make([]float64, nu)
	for u := range weight {
		weight[u] = rng.ExpFloat64()
	}
	cum := make([]float64, nu)
	s := 0.0
	for u, x := range weight {
		s += x
		cum[u] = s
	}
	for range nev {
		u := sort.SearchFloat64s(cum, rng.Float64()*s)
		u = min(u, nu-1)
		ev := Event{
			Time: start.Add(time.Duration(rng.IntN(hours))*time.Hour + time.Duration(rng.IntN(3600))*time.Second),
			User: w.users[u],
		}
		if rng.IntN(100) == 0 {
			ev.User = "" // a system message: no one
		}
		switch r := rng.IntN(10); {
		case r < 5 && len(userTeams[u]) > 0:
			ev.ChannelType = 'O'
			ev.Team = w.teams[userTeams[u][rng.IntN(len(userTeams[u]))]]
		case r < 7 && len(userTeams[u]) > 0:
			ev.ChannelType = 'P'
			ev.Team = w.teams[userTeams[u][rng.IntN(len(userTeams[u]))]]
		case r < 9:
			ev.ChannelType = 'D'
			if rng.IntN(4) == 0 && len(userTeams[u]) > 0 {
				ev.Team = w.teams[userTeams[u][0]]
			}
		default:
			ev.ChannelType = 'G'
			if rng.IntN(50) == 0 {
				ev.ChannelType = 'X' // unknown type
			}
		}
		switch r := rng.IntN(20); {
		case r < 12:
			ev.Kind = Posted
			ev.Bytes = rng.IntN(400)
			if rng.IntN(10) == 0 {
				ev.Files = 1 + rng.IntN(3)
			}
		case r < 15:
			ev.Kind = Edited
			ev.Bytes = rng.IntN(400)
		case r < 17:
			ev.Kind = Deleted
		case r < 18:
			ev.Kind = File
			ev.Files = rng.IntN(3)
		default:
			ev.Kind = Reaction
		}
		w.events = append(w.events, ev)
	}
	slices.SortStableFunc(w.events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return w
}

// truth is the brute-force recount of a set of events.
type truth struct {
	events []Event
	byHour map[int64][]int // event indices by hour, built on first use
}

func (tr *truth) hourEvents(h int64) []int {
	if tr.byHour == nil {
		tr.byHour = map[int64][]int{}
		for i := range tr.events {
			eh := floorDiv(tr.events[i].Time.Unix(), 3600)
			tr.byHour[eh] = append(tr.byHour[eh], i)
		}
	}
	return tr.byHour[h]
}

func normTeam(t string) string {
	if t == "" || len(t) > maxTeamID || t == AllTeams || t == OtherTeams {
		return UnknownTeam
	}
	return t
}

func normType(ct byte) byte {
	if !validType(ct) {
		return UnknownType
	}
	return ct
}

// cell recounts the cell (span, startHour, row, ct) of a day whose named
// teams are named: row is a team, OtherTeams (every team not named) or
// AllTeams.
func (tr *truth) cell(span Span, startHour int64, row string, ct byte, named map[string]bool) Counts {
	var n Counts
	users := map[string]bool{}
	for h := startHour; h < startHour+int64(span); h++ {
		for _, i := range tr.hourEvents(h) {
			tr.count(&tr.events[i], row, ct, named, &n, users)
		}
	}
	n.Users = int64(len(users))
	return n
}

func (tr *truth) count(ev *Event, row string, ct byte, named map[string]bool, n *Counts, users map[string]bool) {
	team := normTeam(ev.Team)
	switch row {
	case AllTeams:
	case OtherTeams:
		if named[team] {
			return
		}
	default:
		if team != row {
			return
		}
	}
	if ct != AllTypes && normType(ev.ChannelType) != ct {
		return
	}
	switch ev.Kind {
	case Posted:
		n.Messages++
	case Edited:
		n.Edits++
	case Deleted:
		n.Deletes++
	case File:
		if ev.Files < 1 {
			n.Files++
		}
	case Reaction:
		n.Reactions++
	}
	n.Bytes += int64(max(ev.Bytes, 0))
	n.Files += int64(max(ev.Files, 0))
	if ev.User != "" {
		users[ev.User] = true
	}
}

// teamDayUsers is the number of distinct users active in team on day.
func (tr *truth) teamDayUsers(team string, day int64) int {
	users := map[string]bool{}
	for h := day * 24; h < day*24+24; h++ {
		for _, i := range tr.hourEvents(h) {
			if ev := &tr.events[i]; normTeam(ev.Team) == team && ev.User != "" {
				users[ev.User] = true
			}
		}
	}
	return len(users)
}

// pubCell is one published or suppressed cell, as an observer sees it.
type pubCell struct {
	span       Span
	hour       int64
	team       string
	ct         byte
	suppressed bool
	n          Counts
	atLeast    bool
}

func cellsFromBuckets(bs []Bucket) []pubCell {
	out := make([]pubCell, len(bs))
	for i, b := range bs {
		out[i] = pubCell{b.Span, b.Hour, b.Team, b.ChannelType, b.Suppressed, b.Counts, false}
	}
	return out
}

func cellsFromRows(rows []Row) []pubCell {
	out := make([]pubCell, len(rows))
	for i, r := range rows {
		out[i] = pubCell{r.Span, r.Start.Unix() / 3600, r.Team, r.ChannelType, r.Suppressed, r.Counts, r.UsersAtLeast}
	}
	return out
}

// checkRelease checks what an observer sees of one day (all cells of one
// release or one publication): figures are exact, every shown cell and
// every team named covers at least k true users, and no suppressed cell
// can be computed from the shown ones.
func checkRelease(t *testing.T, tr *truth, day int64, cells []pubCell, k int) {
	t.Helper()
	named := map[string]bool{}
	for _, c := range cells {
		if c.team != AllTeams && c.team != OtherTeams {
			named[c.team] = true
		}
	}
	for team := range named {
		if n := tr.teamDayUsers(team, day); n < k {
			t.Errorf("day %s: team %s named with %d active users < k=%d", dayString(day), team, n, k)
		}
	}
	for _, c := range cells {
		want := tr.cell(c.span, c.hour, c.team, c.ct, named)
		if c.suppressed {
			if c.n != (Counts{}) {
				t.Errorf("suppressed cell %+v carries figures", c)
			}
			continue
		}
		if want.Users < int64(k) {
			t.Errorf("day %s: shown cell %v %d %s %c has %d true users < k=%d", dayString(day), c.span, c.hour, c.team, c.ct, want.Users, k)
		}
		got := c.n
		if c.atLeast {
			if got.Users > want.Users {
				t.Errorf("cell %+v: users lower bound %d above truth %d", c, got.Users, want.Users)
			}
			got.Users = want.Users
		}
		if got != want {
			t.Errorf("day %s: cell %v %d %s %c = %+v, recount %+v", dayString(day), c.span, c.hour, c.team, c.ct, got, want)
		}
	}
	checkNoDisclosure(t, day, cells)
}

// checkNoDisclosure rebuilds the day's table from the cells alone and
// checks that no suppressed cell is determined by the lines of the table.
func checkNoDisclosure(t *testing.T, day int64, cells []pubCell) {
	t.Helper()
	var teams []string
	var types []byte
	seenT := map[string]bool{}
	seenC := map[byte]bool{}
	for _, c := range cells {
		if c.team != AllTeams && c.team != OtherTeams && !seenT[c.team] {
			seenT[c.team] = true
			teams = append(teams, c.team)
		}
		if c.ct != AllTypes && !seenC[c.ct] {
			seenC[c.ct] = true
			types = append(types, c.ct)
		}
	}
	sort.Strings(teams)
	slices.Sort(types)
	teams = append(teams, OtherTeams, AllTeams)
	types = append(types, AllTypes)
	type key struct {
		t  int
		r  string
		ct byte
	}
	state := map[key]*pubCell{}
	for i := range cells {
		c := &cells[i]
		tt := 24
		if c.span == Hour {
			tt = int(c.hour - day*24)
		}
		k := key{tt, c.team, c.ct}
		if state[k] != nil {
			t.Fatalf("two cells for %v", k)
		}
		state[k] = c
	}
	// Lines: (ordered list of cells, the last being the margin).
	var lines [][]key
	for _, r := range teams {
		for _, ct := range types {
			var l []key
			for tt := 0; tt <= 24; tt++ {
				l = append(l, key{tt, r, ct})
			}
			lines = append(lines, l)
		}
	}
	for tt := 0; tt <= 24; tt++ {
		for _, ct := range types {
			var l []key
			for _, r := range teams {
				l = append(l, key{tt, r, ct})
			}
			lines = append(lines, l)
		}
		for _, r := range teams {
			var l []key
			for _, ct := range types {
				l = append(l, key{tt, r, ct})
			}
			lines = append(lines, l)
		}
	}
	// Attack 1: a margin minus the visible cells of its line.
	unknown := map[key]int{}
	var unknownKeys []key
	for _, l := range lines {
		var hid []key
		for _, k := range l {
			if c := state[k]; c != nil && c.suppressed {
				hid = append(hid, k)
			}
		}
		if len(hid) == 1 {
			t.Errorf("day %s: suppressed cell %v is its line's margin minus the shown cells", dayString(day), hid[0])
		}
		for _, k := range hid {
			if _, ok := unknown[k]; !ok {
				unknown[k] = len(unknownKeys)
				unknownKeys = append(unknownKeys, k)
			}
		}
	}
	if len(unknownKeys) == 0 {
		return
	}
	// Attack 2: any linear combination of lines, one connected group of
	// suppressed cells at a time. Dense elimination modulo 2^31−1 (not the
	// prime suppress uses), and over the rationals when small.
	parent := make([]int, len(unknownKeys))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(x int) int {
		if parent[x] != x {
			parent[x] = find(parent[x])
		}
		return parent[x]
	}
	var eqs [][]int // unknown ids per line, the margin's id negated-encoded below
	var margins []int
	for _, l := range lines {
		var ids []int
		margin := -1
		for i, k := range l {
			if c := state[k]; c != nil && c.suppressed {
				ids = append(ids, unknown[k])
				if i == len(l)-1 {
					margin = unknown[k]
				}
			}
		}
		if len(ids) == 0 {
			continue
		}
		for _, id := range ids[1:] {
			parent[find(id)] = find(ids[0])
		}
		eqs = append(eqs, ids)
		margins = append(margins, margin)
	}
	groups := map[int][]int{}
	for i := range unknownKeys {
		groups[find(i)] = append(groups[find(i)], i)
	}
	for root, members := range groups {
		local := map[int]int{}
		for j, id := range members {
			local[id] = j
		}
		var mat [][]int64
		for e, ids := range eqs {
			if find(ids[0]) != root {
				continue
			}
			row := make([]int64, len(members))
			for _, id := range ids {
				v := int64(1)
				if id == margins[e] {
					v = testP - 1
				}
				row[local[id]] = v
			}
			mat = append(mat, row)
		}
		checkerStats.groups++
		checkerStats.maxUnknown = max(checkerStats.maxUnknown, len(members))
		// Certificates: for every suppressed cell, an exact rational vector
		// that satisfies every line with zero right-hand side and moves
		// the cell. Adding it to the true table gives another table with
		// the same shown cells and a different value there.
		var eqIDs [][]int
		var eqMargin []int
		for e, ids := range eqs {
			if find(ids[0]) == root {
				eqIDs = append(eqIDs, ids)
				eqMargin = append(eqMargin, margins[e])
			}
		}
		for _, j := range uncertified(eqIDs, eqMargin, members, local) {
			t.Errorf("day %s: suppressed cell %v has no certificate of being undetermined", dayString(day), unknownKeys[j])
		}
		if len(members) > 400 {
			checkerStats.skippedDense++
		} else {
			for _, j := range denseDetermined(mat, len(members)) {
				t.Errorf("day %s: suppressed cell %v follows from a combination of lines (mod p)", dayString(day), unknownKeys[members[j]])
			}
		}
		if len(members) <= 40 {
			checkerStats.exact++
			for _, j := range ratDetermined(mat, len(members)) {
				t.Errorf("day %s: suppressed cell %v follows from a combination of lines (exact)", dayString(day), unknownKeys[members[j]])
			}
		}
	}
}

// uncertified returns the unknowns (ids from members) for which no exact
// kernel vector of the equations moves them. The kernel vectors are read
// off suppress.go's modular reduced echelon form by rational reconstruction
// and then verified exactly here, so the check does not trust rref.
func uncertified(eqIDs [][]int, eqMargin []int, members []int, local map[int]int) []int {
	n := len(members)
	var rows [][]entry
	for e, ids := range eqIDs {
		var row []entry
		for _, id := range ids {
			v := uint64(1)
			if id == eqMargin[e] {
				v = modP - 1
			}
			row = append(row, entry{int32(local[id]), v})
		}
		slices.SortFunc(row, func(a, b entry) int { return int(a.col - b.col) })
		rows = append(rows, row)
	}
	basis, pivot := rref(rows, n)
	// column -> (pivot column, coefficient) for each basis row containing it
	inFree := map[int32][][2]uint64{}
	for c, p := range pivot {
		if p < 0 {
			continue
		}
		for _, e := range basis[p][1:] {
			inFree[e.col] = append(inFree[e.col], [2]uint64{uint64(c), e.v})
		}
	}
	eqOf := make([][]int, n) // equations per local column
	for e, ids := range eqIDs {
		for _, id := range ids {
			eqOf[local[id]] = append(eqOf[local[id]], e)
		}
	}
	certified := make([]bool, n)
	for f := range n {
		if pivot[f] >= 0 {
			continue
		}
		v := map[int]*big.Rat{f: big.NewRat(1, 1)}
		ok := true
		for _, pc := range inFree[int32(f)] {
			r, good := reconstruct(pc[1])
			if !good {
				ok = false
				break
			}
			v[int(pc[0])] = r.Neg(r)
		}
		if !ok {
			continue
		}
		// Verify exactly every equation touching the vector's support
		// (the others sum to zero term by term).
		eqSet := map[int]bool{}
		for j := range v {
			for _, e := range eqOf[j] {
				eqSet[e] = true
			}
		}
		for e := range eqSet {
			ids := eqIDs[e]
			sum := new(big.Rat)
			for _, id := range ids {
				x := v[local[id]]
				if x == nil {
					continue
				}
				if id == eqMargin[e] {
					sum.Sub(sum, x)
				} else {
					sum.Add(sum, x)
				}
			}
			if sum.Sign() != 0 {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		for j, x := range v {
			if x.Sign() != 0 {
				certified[j] = true
			}
		}
	}
	var out []int
	for j, c := range certified {
		if !c {
			out = append(out, members[j])
		}
	}
	return out
}

// reconstruct finds n/d ≡ a (mod modP) with |n|, d below sqrt(modP/2).
func reconstruct(a uint64) (*big.Rat, bool) {
	p := new(big.Int).SetUint64(modP)
	bound := new(big.Int).Sqrt(new(big.Int).Rsh(p, 1))
	r0, r1 := new(big.Int).Set(p), new(big.Int).SetUint64(a)
	t0, t1 := big.NewInt(0), big.NewInt(1)
	q, tmp := new(big.Int), new(big.Int)
	for r1.CmpAbs(bound) > 0 {
		q.Quo(r0, r1)
		tmp.Mul(q, r1)
		r0, r1 = r1, new(big.Int).Sub(r0, tmp)
		tmp.Mul(q, t1)
		t0, t1 = t1, new(big.Int).Sub(t0, tmp)
	}
	if t1.Sign() == 0 || t1.CmpAbs(bound) > 0 {
		return nil, false
	}
	return new(big.Rat).SetFrac(r1, t1), true
}

const testP = 1<<31 - 1

// checkerStats says how much of the checking ran (logged by the property
// tests).
var checkerStats struct {
	groups, maxUnknown, skippedDense, exact int
}

func powP(a, e int64) int64 {
	r := int64(1)
	a %= testP
	for e > 0 {
		if e&1 == 1 {
			r = r * a % testP
		}
		a = a * a % testP
		e >>= 1
	}
	return r
}

// denseDetermined returns the columns j with e_j in the row space of m.
func denseDetermined(m [][]int64, n int) []int {
	rows := make([][]int64, len(m))
	for i := range m {
		rows[i] = slices.Clone(m[i])
	}
	var pivCols []int
	r := 0
	for c := 0; c < n && r < len(rows); c++ {
		p := -1
		for i := r; i < len(rows); i++ {
			if rows[i][c] != 0 {
				p = i
				break
			}
		}
		if p < 0 {
			continue
		}
		rows[r], rows[p] = rows[p], rows[r]
		inv := powP(rows[r][c], testP-2)
		for j := range rows[r] {
			rows[r][j] = rows[r][j] * inv % testP
		}
		for i := range rows {
			if i != r && rows[i][c] != 0 {
				f := rows[i][c]
				for j := range rows[i] {
					rows[i][j] = ((rows[i][j]-f*rows[r][j])%testP + testP) % testP
				}
			}
		}
		pivCols = append(pivCols, c)
		r++
	}
	var out []int
	for i, c := range pivCols {
		nz := 0
		for _, v := range rows[i] {
			if v != 0 {
				nz++
			}
		}
		if nz == 1 {
			out = append(out, c)
		}
	}
	return out
}

// ratDetermined is denseDetermined over the rationals.
func ratDetermined(m [][]int64, n int) []int {
	rows := make([][]*big.Rat, len(m))
	for i := range m {
		rows[i] = make([]*big.Rat, n)
		for j, v := range m[i] {
			if v == testP-1 {
				v = -1
			}
			rows[i][j] = big.NewRat(v, 1)
		}
	}
	var pivCols []int
	r := 0
	tmp := new(big.Rat)
	for c := 0; c < n && r < len(rows); c++ {
		p := -1
		for i := r; i < len(rows); i++ {
			if rows[i][c].Sign() != 0 {
				p = i
				break
			}
		}
		if p < 0 {
			continue
		}
		rows[r], rows[p] = rows[p], rows[r]
		inv := new(big.Rat).Inv(rows[r][c])
		for j := range rows[r] {
			rows[r][j].Mul(rows[r][j], inv)
		}
		for i := range rows {
			if i != r && rows[i][c].Sign() != 0 {
				f := new(big.Rat).Set(rows[i][c])
				for j := range rows[i] {
					rows[i][j].Sub(rows[i][j], tmp.Mul(f, rows[r][j]))
				}
			}
		}
		pivCols = append(pivCols, c)
		r++
	}
	var out []int
	for i, c := range pivCols {
		nz := 0
		for _, v := range rows[i] {
			if v.Sign() != 0 {
				nz++
			}
		}
		if nz == 1 {
			out = append(out, c)
		}
	}
	return out
}

// byDay splits cells by day.
func byDay(cells []pubCell) map[int64][]pubCell {
	out := map[int64][]pubCell{}
	for _, c := range cells {
		d := floorDiv(c.hour, 24)
		out[d] = append(out[d], c)
	}
	return out
}

func describe(w world) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d users, %d teams, %d events", len(w.users), len(w.teams), len(w.events))
	return b.String()
}
