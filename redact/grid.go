package redact

import (
	"cmp"
	"slices"
)

// A grid is one day's release: a three-way table of time × team × channel
// type with all its margins.
//
//	time  t: hours 0..23 of the day, then tDay, the whole day
//	team  r: the named teams (sorted), then OtherTeams, then AllTeams
//	type  c: the channel types seen (sorted), then AllTypes
//
// Every line of the table (two coordinates fixed, the third running) sums
// to its last cell, the margin. Those linear relations are what an observer
// can use to compute a suppressed cell, and what suppress guards against.
type grid struct {
	day     int64
	teams   []string // row names; the last two are OtherTeams and AllTeams
	types   []byte   // column names; the last is AllTypes
	partial bool
	cells   []gcell
}

const (
	nTimes = dayHours + 1 // hours, then the day
	tDay   = dayHours
)

type cellState uint8

const (
	empty  cellState = iota // no event: a known zero
	known                   // released with its figures
	hidden                  // suppressed
)

type gcell struct {
	n     Counts // figures (meaningful when known); n.Users is exact or a lower bound
	state cellState
	// atLeast: n.Users is a lower bound (cells merged at publication).
	atLeast bool
}

func newGrid(day int64, named []string, types []byte) *grid {
	g := &grid{day: day}
	g.teams = append(append(g.teams, named...), OtherTeams, AllTeams)
	g.types = append(append(g.types, types...), AllTypes)
	g.cells = make([]gcell, nTimes*len(g.teams)*len(g.types))
	return g
}

func (g *grid) nr() int { return len(g.teams) }
func (g *grid) nc() int { return len(g.types) }

func (g *grid) idx(t, r, c int) int { return (t*g.nr()+r)*g.nc() + c }

func (g *grid) coords(i int) (t, r, c int) {
	nc, nr := g.nc(), g.nr()
	return i / (nr * nc), (i / nc) % nr, i % nc
}

// userAtom pairs a user's keyed hash with an atom (hour, team, type) the
// user was active in.
type userAtom struct {
	user uint64
	atom int32
}

type atom struct {
	hour, team, ct int
	n              Counts
}

// dayData is one day's atoms with their users, ready to be laid out as a
// grid.
type dayData struct {
	day       int64
	atoms     []atom
	pairs     []userAtom // sorted by user
	teamNames []string
	teamUsers []int64 // distinct users per team over the day
	types     []byte
}

// prepareDay merges the shards' parts of each atom of one day and counts
// the distinct users of every team over the day. The shards' user sets of
// an atom are disjoint (a user always lands on the same shard).
func prepareDay(day int64, da *dayAtoms) *dayData {
	dd := &dayData{day: day}
	atomIdx := map[cellKey]int{}
	teamIdx := map[string]int{}
	var typesSeen [256]bool
	for i, key := range da.keys {
		c := da.cells[i]
		ai, ok := atomIdx[key]
		if !ok {
			ti, ok := teamIdx[key.team]
			if !ok {
				ti = len(dd.teamNames)
				teamIdx[key.team] = ti
				dd.teamNames = append(dd.teamNames, key.team)
			}
			typesSeen[key.ct] = true
			ai = len(dd.atoms)
			atomIdx[key] = ai
			dd.atoms = append(dd.atoms, atom{hour: int(key.hour - day*dayHours), team: ti, ct: int(key.ct)})
		}
		dd.atoms[ai].n.add(&c.n)
		for u := range c.users {
			dd.pairs = append(dd.pairs, userAtom{user: u, atom: int32(ai)})
		}
	}
	slices.SortFunc(dd.pairs, func(a, b userAtom) int {
		if c := cmp.Compare(a.user, b.user); c != 0 {
			return c
		}
		return cmp.Compare(a.atom, b.atom)
	})
	for ct := range typesSeen {
		if typesSeen[ct] {
			dd.types = append(dd.types, byte(ct))
		}
	}
	dd.teamUsers = make([]int64, len(dd.teamNames))
	stamp := make([]int, len(dd.teamNames))
	for i := range stamp {
		stamp[i] = -1
	}
	forEachUser(dd.pairs, func(g int, ps []userAtom) {
		for _, p := range ps {
			t := dd.atoms[p.atom].team
			if stamp[t] != g {
				stamp[t] = g
				dd.teamUsers[t]++
			}
		}
	})
	return dd
}

// release lays out the day with exact distinct-user counts in every cell,
// margins included, and protects it. A team is named when at least k
// distinct users were active in it that day and, after suppression, one of
// its shown cells still proves it (Publish names a team on that proof
// only); the others are counted in the OtherTeams row.
func (dd *dayData) release(k int) *grid {
	folded := map[string]bool{}
	for t, name := range dd.teamNames {
		if dd.teamUsers[t] < int64(k) {
			folded[name] = true
		}
	}
	for {
		g := dd.grid(folded)
		suppress(g, k)
		again := false
		for r, name := range g.teams[:g.nr()-2] {
			if g.rowProof(r) < int64(k) {
				folded[name] = true
				again = true
			}
		}
		if !again {
			return g
		}
	}
}

// rowProof is the most users of any shown cell of row r: a lower bound of
// the row's distinct users over the day.
func (g *grid) rowProof(r int) int64 {
	best := int64(0)
	for t := 0; t < nTimes; t++ {
		for c := 0; c < g.nc(); c++ {
			if gc := &g.cells[g.idx(t, r, c)]; gc.state == known {
				best = max(best, gc.n.Users)
			}
		}
	}
	return best
}

// grid lays out the day with the teams in folded merged into OtherTeams.
func (dd *dayData) grid(folded map[string]bool) *grid {
	var named []string
	for _, name := range dd.teamNames {
		if !folded[name] {
			named = append(named, name)
		}
	}
	slices.Sort(named)
	g := newGrid(dd.day, named, dd.types)
	rowOf := make([]int, len(dd.teamNames))
	for t, name := range dd.teamNames {
		r, ok := slices.BinarySearch(named, name)
		if !ok {
			r = len(named) // OtherTeams
		}
		rowOf[t] = r
	}
	colOf := [256]int{}
	for c, ct := range dd.types {
		colOf[ct] = c
	}
	allR, allC := g.nr()-1, g.nc()-1

	// The eight cells an atom adds to: itself and its margins.
	cellsOf := func(a *atom) [8]int {
		r, c := rowOf[a.team], colOf[a.ct]
		var out [8]int
		i := 0
		for _, t := range [2]int{a.hour, tDay} {
			for _, rr := range [2]int{r, allR} {
				for _, cc := range [2]int{c, allC} {
					out[i] = g.idx(t, rr, cc)
					i++
				}
			}
		}
		return out
	}
	for i := range dd.atoms {
		for _, ci := range cellsOf(&dd.atoms[i]) {
			gc := &g.cells[ci]
			gc.n.add(&dd.atoms[i].n)
			gc.state = known
		}
	}
	// Distinct users of every cell: each user once per cell.
	stamp := make([]int, len(g.cells))
	for i := range stamp {
		stamp[i] = -1
	}
	forEachUser(dd.pairs, func(u int, ps []userAtom) {
		for _, p := range ps {
			for _, ci := range cellsOf(&dd.atoms[p.atom]) {
				if stamp[ci] != u {
					stamp[ci] = u
					g.cells[ci].n.Users++
				}
			}
		}
	})
	return g
}

// forEachUser calls fn with each user's run of the sorted pairs.
func forEachUser(pairs []userAtom, fn func(g int, ps []userAtom)) {
	g := 0
	for i := 0; i < len(pairs); {
		j := i + 1
		for j < len(pairs) && pairs[j].user == pairs[i].user {
			j++
		}
		fn(g, pairs[i:j])
		g++
		i = j
	}
}

// appendBuckets appends the grid's non-empty cells as buckets.
func (g *grid) appendBuckets(out []Bucket, release uint64, partial bool) []Bucket {
	for i := range g.cells {
		gc := &g.cells[i]
		if gc.state == empty {
			continue
		}
		t, r, c := g.coords(i)
		b := Bucket{Release: release, Team: g.teams[r], ChannelType: g.types[c], Partial: partial}
		if t == tDay {
			b.Span, b.Hour = Day, g.day*dayHours
		} else {
			b.Span, b.Hour = Hour, g.day*dayHours+int64(t)
		}
		if gc.state == hidden {
			b.Suppressed = true
		} else {
			b.Counts = gc.n
		}
		out = append(out, b)
	}
	return out
}
