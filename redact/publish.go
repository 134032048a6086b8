package redact

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Query selects what Publish shows.
type Query struct {
	From, To time.Time // rows whose start is in [From, To)
	By       Span      // Hour or Day
}

// Table is a publication: rows of figures and of suppressed cells.
type Table struct {
	K    int  // the k applied
	By   Span // Hour or Day
	Rows []Row
}

// Row is one cell of a publication.
type Row struct {
	Start       time.Time
	Span        Span
	Team        string // a team id with at least k active users that day, OtherTeams, UnknownTeam or AllTeams
	ChannelType byte   // 'O', 'P', 'D', 'G', UnknownType or AllTypes
	// Suppressed rows carry zero Counts.
	Suppressed bool
	// Partial: the day's figures come from a release that did not see the
	// whole day (the gateway restarted); they may fall short.
	Partial bool
	// UsersAtLeast: Users is a lower bound, not the exact count, because
	// the cell merges cells released apart (teams folded at publication,
	// or two releases of one day). The cell has at least k users either way.
	UsersAtLeast bool
	Counts
}

// Publish builds a publication from persisted buckets.
//
// It works day by day on the whole day's release, whatever the query shows
// of it, so that every query with the same k shows parts of one and the same
// protected table: combining an hourly and a daily publication, or several
// ranges, reveals nothing more than the table does. The buckets were
// already protected when they were released; Publish protects them again
// when k is higher than it was then (a team whose provable users fall below
// k is folded into OtherTeams, cells below k are suppressed with their
// complements), and when it combines two releases of one day. It raises the
// threshold one step at a time from MinK to k, so a publication with a
// larger k never shows a cell that a publication with a smaller k hid, and
// holds nothing that cannot be computed from the latter.
//
// A k below MinK is taken as MinK. Buckets of days outside the query are
// ignored; malformed buckets are an error.
func Publish(buckets []Bucket, q Query, k int) (Table, error) {
	if q.By != Hour && q.By != Day {
		return Table{}, fmt.Errorf("redact: query granularity %v, want hour or day", q.By)
	}
	if !q.To.After(q.From) {
		return Table{}, errors.New("redact: query ends before it starts")
	}
	k = max(k, MinK)
	fromH := floorDiv(q.From.Unix()+3599, 3600) // first hour starting at or after From
	toH := floorDiv(q.To.Unix()+3599, 3600)     // hours < toH start before To
	firstDay, lastDay := floorDiv(fromH, dayHours), floorDiv(toH-1, dayHours)

	type relKey struct {
		day     int64
		release uint64
	}
	byRel := map[relKey][]int{}
	for i := range buckets {
		b := &buckets[i]
		if err := checkBucket(b); err != nil {
			return Table{}, fmt.Errorf("redact: bucket %d: %w", i, err)
		}
		d := floorDiv(b.Hour, dayHours)
		if d < firstDay || d > lastDay {
			continue
		}
		byRel[relKey{d, b.Release}] = append(byRel[relKey{d, b.Release}], i)
	}
	byDay := map[int64][]*grid{}
	var days []int64
	keys := make([]relKey, 0, len(byRel))
	for rk := range byRel {
		keys = append(keys, rk)
	}
	slices.SortFunc(keys, func(a, b relKey) int {
		if a.day != b.day {
			return compare64(a.day, b.day)
		}
		return compareU64(a.release, b.release)
	})
	for _, rk := range keys {
		g, err := gridFromBuckets(rk.day, buckets, byRel[rk])
		if err != nil {
			return Table{}, fmt.Errorf("redact: release %x of day %s: %w", rk.release, dayString(rk.day), err)
		}
		if len(byDay[rk.day]) == 0 {
			days = append(days, rk.day)
		}
		byDay[rk.day] = append(byDay[rk.day], g)
	}

	t := Table{K: k, By: q.By}
	for _, d := range days {
		g := combine(byDay[d])
		g = protect(g, MinK)
		for kk := MinK + 1; kk <= k; kk++ {
			if g.needs(kk) {
				g = protect(g, kk)
			}
		}
		t.Rows = g.appendRows(t.Rows, q.By, fromH, toH)
	}
	return t, nil
}

func compare64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func dayString(d int64) string { return time.Unix(d*86400, 0).UTC().Format("2006-01-02") }

func checkBucket(b *Bucket) error {
	switch b.Span {
	case Hour:
	case Day:
		if floorDiv(b.Hour, dayHours)*dayHours != b.Hour {
			return errors.New("day bucket does not start at midnight UTC")
		}
	default:
		return fmt.Errorf("span %d, want 1 or 24", int(b.Span))
	}
	if b.Team == "" || len(b.Team) > maxTeamID {
		return errors.New("empty or overlong team")
	}
	if b.ChannelType != AllTypes && !validType(b.ChannelType) {
		return fmt.Errorf("channel type %q", b.ChannelType)
	}
	n := &b.Counts
	if n.Messages < 0 || n.Edits < 0 || n.Deletes < 0 || n.Bytes < 0 || n.Files < 0 || n.Reactions < 0 || n.Users < 0 {
		return errors.New("negative count")
	}
	if b.Suppressed && b.Counts != (Counts{}) {
		return errors.New("suppressed bucket with figures")
	}
	return nil
}

// gridFromBuckets rebuilds the grid of one release from its buckets. A cell
// without a bucket had no event (a known zero); a suppressed bucket is a
// hidden cell whose number of users is unknown (taken as 0).
func gridFromBuckets(day int64, all []Bucket, idx []int) (*grid, error) {
	var named []string
	var typesSeen [256]bool
	seenTeam := map[string]bool{}
	partial := false
	for _, i := range idx {
		b := &all[i]
		partial = partial || b.Partial
		if b.ChannelType != AllTypes {
			typesSeen[b.ChannelType] = true
		}
		if b.Team != AllTeams && b.Team != OtherTeams && !seenTeam[b.Team] {
			seenTeam[b.Team] = true
			named = append(named, b.Team)
		}
	}
	slices.Sort(named)
	var types []byte
	for ct := range typesSeen {
		if typesSeen[ct] {
			types = append(types, byte(ct))
		}
	}
	g := newGrid(day, named, types)
	g.partial = partial
	for _, i := range idx {
		b := &all[i]
		t := tDay
		if b.Span == Hour {
			t = int(b.Hour - day*dayHours)
		}
		var r int
		switch b.Team {
		case OtherTeams:
			r = g.nr() - 2
		case AllTeams:
			r = g.nr() - 1
		default:
			r, _ = slices.BinarySearch(named, b.Team)
		}
		c := g.nc() - 1
		if b.ChannelType != AllTypes {
			c, _ = slices.BinarySearch(types, b.ChannelType)
		}
		gc := &g.cells[g.idx(t, r, c)]
		if gc.state != empty {
			return nil, fmt.Errorf("bucket %d: a second bucket for one cell", i)
		}
		if b.Suppressed {
			gc.state = hidden
		} else {
			gc.state = known
			gc.n = b.Counts
		}
	}
	return g, nil
}

// merge folds cell b into cell a: a cell merged from released cells is
// released with summed figures and the larger user count (a lower bound of
// the distinct users of the union); merged with a hidden cell it is hidden.
func merge(a *gcell, b gcell) {
	switch {
	case b.state == empty:
		return
	case a.state == empty:
		*a = b
		return
	}
	users := max(a.n.Users, b.n.Users)
	if a.state == known && b.state == known {
		a.n.add(&b.n)
	} else {
		a.state = hidden
		a.n = Counts{}
	}
	a.n.Users = users
	a.atLeast = true
}

// regrid maps g onto the rows named (a subset of g's named teams; the
// others fold into OtherTeams) and the columns types (a superset of g's).
func regrid(g *grid, named []string, types []byte) *grid {
	ng := newGrid(g.day, named, types)
	ng.partial = g.partial
	rowOf := make([]int, g.nr())
	for r, name := range g.teams {
		switch {
		case r == g.nr()-1:
			rowOf[r] = ng.nr() - 1
		case r == g.nr()-2:
			rowOf[r] = ng.nr() - 2
		default:
			nr, ok := slices.BinarySearch(named, name)
			if !ok {
				nr = ng.nr() - 2
			}
			rowOf[r] = nr
		}
	}
	colOf := make([]int, g.nc())
	for c, ct := range g.types {
		if c == g.nc()-1 {
			colOf[c] = ng.nc() - 1
		} else {
			colOf[c], _ = slices.BinarySearch(types, ct)
		}
	}
	for i := range g.cells {
		t, r, c := g.coords(i)
		merge(&ng.cells[ng.idx(t, rowOf[r], colOf[c])], g.cells[i])
	}
	return ng
}

// combine merges the releases of one day into one grid. A team stays named
// only if no release may hold it in its OtherTeams row.
func combine(gs []*grid) *grid {
	if len(gs) == 1 {
		return gs[0]
	}
	var typesSeen [256]bool
	count := map[string]int{}
	for _, g := range gs {
		for _, ct := range g.types[:g.nc()-1] {
			typesSeen[ct] = true
		}
		for _, name := range g.teams[:g.nr()-2] {
			count[name]++
		}
	}
	var named []string
	for name := range count {
		keep := true
		for _, g := range gs {
			_, in := slices.BinarySearch(g.teams[:g.nr()-2], name)
			if !in && !g.rowEmpty(g.nr()-2) {
				keep = false
			}
		}
		if keep {
			named = append(named, name)
		}
	}
	slices.Sort(named)
	var types []byte
	for ct := range typesSeen {
		if typesSeen[ct] {
			types = append(types, byte(ct))
		}
	}
	out := newGrid(gs[0].day, named, types)
	for _, g := range gs {
		rg := regrid(g, named, types)
		for i := range rg.cells {
			merge(&out.cells[i], rg.cells[i])
		}
	}
	out.partial = true
	return out
}

func (g *grid) rowEmpty(r int) bool {
	for t := 0; t < nTimes; t++ {
		for c := 0; c < g.nc(); c++ {
			if g.cells[g.idx(t, r, c)].state != empty {
				return false
			}
		}
	}
	return true
}

// foldSmallTeams folds into OtherTeams every named team that cannot be
// shown to have k users: the most users of any of its released cells is a
// lower bound of its distinct users that day.
// needs reports whether raising the threshold to k changes a grid that is
// protected at k-1: a shown cell or a named team's proof is below k.
// Otherwise protect(g, k) would leave it as it is.
func (g *grid) needs(k int) bool {
	for i := range g.cells {
		if gc := &g.cells[i]; gc.state == known && gc.n.Users < int64(k) {
			return true
		}
	}
	for r := range g.nr() - 2 {
		if g.rowProof(r) < int64(k) {
			return true
		}
	}
	return false
}

// protect folds the teams that cannot be shown to have k users and
// suppresses, until every named team keeps a shown cell of k users.
func protect(g *grid, k int) *grid {
	for {
		g = foldSmallTeams(g, k)
		suppress(g, k)
		ok := true
		for r := range g.nr() - 2 {
			if g.rowProof(r) < int64(k) {
				ok = false
			}
		}
		if ok {
			return g
		}
	}
}

func foldSmallTeams(g *grid, k int) *grid {
	var keep []string
	for r, name := range g.teams[:g.nr()-2] {
		if g.rowProof(r) >= int64(k) {
			keep = append(keep, name)
		}
	}
	if len(keep) == g.nr()-2 {
		return g
	}
	return regrid(g, keep, g.types[:g.nc()-1])
}

// appendRows appends the grid's non-empty cells at granularity by whose
// start hour is in [fromH, toH).
func (g *grid) appendRows(out []Row, by Span, fromH, toH int64) []Row {
	ts := []int{tDay}
	if by == Hour {
		ts = ts[:0]
		for t := 0; t < dayHours; t++ {
			ts = append(ts, t)
		}
	}
	for _, t := range ts {
		h := g.day*dayHours + int64(t)
		if t == tDay {
			h = g.day * dayHours
		}
		if h < fromH || h >= toH {
			continue
		}
		for r := 0; r < g.nr(); r++ {
			for c := 0; c < g.nc(); c++ {
				gc := &g.cells[g.idx(t, r, c)]
				if gc.state == empty {
					continue
				}
				row := Row{
					Start: time.Unix(h*3600, 0).UTC(), Span: by,
					Team: g.teams[r], ChannelType: g.types[c],
					Partial: g.partial,
				}
				if gc.state == hidden {
					row.Suppressed = true
				} else {
					row.Counts = gc.n
					row.UsersAtLeast = gc.atLeast
				}
				out = append(out, row)
			}
		}
	}
	return out
}
