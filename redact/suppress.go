package redact

import (
	"math/bits"
	"slices"
)

// suppress applies the k-rule and complementary suppression to g, in place:
//
//  1. primary: every released cell with fewer than k distinct users (or,
//     at publication, fewer than k provable users) is hidden;
//  2. lines: while a line (a group and its margin) holds exactly one hidden
//     cell, that cell is its margin minus the others, so the cheapest
//     released cell of the line is hidden too;
//  3. audit: the hidden cells are unknowns of the linear system formed by
//     all lines; a hidden cell is exposed when its value follows from the
//     system, which the audit decides by Gaussian elimination. For every
//     exposed cell the cheapest nearby released cell is hidden, and the
//     whole process repeats until no hidden cell is exposed.
//
// Step 3 closes what step 2 misses: patterns where no single line
// gives a cell away but a sum of lines does (in a two-way table, a hidden
// cell that is a bridge between two rings of hidden cells).
//
// It always terminates: each round hides one more cell, and a system in
// which every non-empty cell is hidden exposes nothing (its only values
// forced by the lines would be zeros, and an empty cell is never hidden).
func suppress(g *grid, k int) {
	for i := range g.cells {
		gc := &g.cells[i]
		if gc.state == known && gc.n.Users < int64(k) {
			gc.state = hidden
		}
	}
	s := newSuppressor(g)
	for {
		s.lineRule()
		exposed := s.audit()
		if len(exposed) == 0 {
			return
		}
		if !s.complement(exposed) {
			// Unreachable by the argument above; fail closed.
			for i := range g.cells {
				if g.cells[i].state == known {
					g.cells[i].state = hidden
				}
			}
			return
		}
	}
}

type suppressor struct {
	g     *grid
	lines [][]int32 // each line's cells; the last is its margin
	nr    int
	nc    int
}

func newSuppressor(g *grid) *suppressor {
	s := &suppressor{g: g, nr: g.nr(), nc: g.nc()}
	nr, nc := s.nr, s.nc
	s.lines = make([][]int32, 0, nr*nc+nTimes*nc+nTimes*nr)
	// Along time, for each (team, type); then along teams, for each (time,
	// type); then along types, for each (time, team). lineIDs relies on
	// this order.
	for r := 0; r < nr; r++ {
		for c := 0; c < nc; c++ {
			l := make([]int32, nTimes)
			for t := 0; t < nTimes; t++ {
				l[t] = int32(g.idx(t, r, c))
			}
			s.lines = append(s.lines, l)
		}
	}
	for t := 0; t < nTimes; t++ {
		for c := 0; c < nc; c++ {
			l := make([]int32, nr)
			for r := 0; r < nr; r++ {
				l[r] = int32(g.idx(t, r, c))
			}
			s.lines = append(s.lines, l)
		}
	}
	for t := 0; t < nTimes; t++ {
		for r := 0; r < nr; r++ {
			l := make([]int32, nc)
			for c := 0; c < nc; c++ {
				l[c] = int32(g.idx(t, r, c))
			}
			s.lines = append(s.lines, l)
		}
	}
	return s
}

// lineIDs returns the three lines through cell i.
func (s *suppressor) lineIDs(i int) [3]int {
	t, r, c := s.g.coords(i)
	return [3]int{
		r*s.nc + c,
		s.nr*s.nc + t*s.nc + c,
		s.nr*s.nc + nTimes*s.nc + t*s.nr + r,
	}
}

// cheaper reports whether cell a is a cheaper complement than cell b:
// fewer events, then fewer users, then the lower index.
func (s *suppressor) cheaper(a, b int) bool {
	ca, cb := &s.g.cells[a].n, &s.g.cells[b].n
	if ea, eb := ca.events(), cb.events(); ea != eb {
		return ea < eb
	}
	if ca.Users != cb.Users {
		return ca.Users < cb.Users
	}
	return a < b
}

// lineRule hides a complement on every line with exactly one hidden cell,
// until there is none.
func (s *suppressor) lineRule() {
	cells := s.g.cells
	for changed := true; changed; {
		changed = false
		for _, l := range s.lines {
			nh := 0
			for _, i := range l {
				if cells[i].state == hidden {
					nh++
				}
			}
			if nh != 1 {
				continue
			}
			best := -1
			for _, i := range l {
				if cells[i].state == known && (best < 0 || s.cheaper(int(i), best)) {
					best = int(i)
				}
			}
			if best >= 0 { // always: a lone hidden cell has a non-empty partner
				cells[best].state = hidden
				changed = true
			}
		}
	}
}

// complement hides, for each exposed cell, the cheapest released cell
// nearest to it: on its lines, else on the lines of the hidden cells met on
// the way. It reports whether anything was hidden.
func (s *suppressor) complement(exposed []int) bool {
	cells := s.g.cells
	progress := false
	seen := map[int]bool{}
	for _, u := range exposed {
		clear(seen)
		seen[u] = true
		frontier := []int{u}
		best := -1
		for len(frontier) > 0 && best < 0 {
			var next []int
			for _, v := range frontier {
				for _, l := range s.lineIDs(v) {
					for _, i32 := range s.lines[l] {
						i := int(i32)
						switch cells[i].state {
						case known:
							if best < 0 || s.cheaper(i, best) {
								best = i
							}
						case hidden:
							if !seen[i] {
								seen[i] = true
								next = append(next, i)
							}
						}
					}
				}
			}
			frontier = next
		}
		if best >= 0 {
			cells[best].state = hidden
			progress = true
		}
	}
	return progress
}

// audit returns the hidden cells whose value follows from the lines and the
// released cells, in increasing index order.
//
// Each line is an equation Σ parts − margin = 0 over all its cells; moving
// the released and empty cells to the right-hand side leaves an equation
// over the hidden ones. A hidden cell x is exposed exactly when the unit
// vector e_x lies in the row space of those equations, which the reduced
// row echelon form shows directly: x is a pivot whose row has no other
// entry. The arithmetic is exact modulo the prime 2^61−1 (the coefficients
// are 0 and ±1); it can only err by finding a cell exposed that is not,
// which costs an extra suppression, unless that prime divides a minor of
// the system, which for these tables does not happen in practice.
func (s *suppressor) audit() []int {
	cells := s.g.cells
	// Connected components of hidden cells (linked by sharing a line).
	parent := make([]int32, len(cells))
	find := func(x int) int {
		for int(parent[x]) != x {
			parent[x] = parent[parent[x]]
			x = int(parent[x])
		}
		return x
	}
	nh := 0
	for i := range cells {
		parent[i] = int32(i)
		if cells[i].state == hidden {
			nh++
		}
	}
	if nh == 0 {
		return nil
	}
	lineHidden := make([][]int32, len(s.lines))
	for li, l := range s.lines {
		var first = -1
		for _, i := range l {
			if cells[i].state != hidden {
				continue
			}
			lineHidden[li] = append(lineHidden[li], i)
			if first < 0 {
				first = int(i)
			} else if a, b := find(first), find(int(i)); a != b {
				parent[b] = int32(a)
			}
		}
	}
	comps := map[int][]int{} // root -> line ids
	for li, h := range lineHidden {
		if len(h) > 0 {
			root := find(int(h[0]))
			comps[root] = append(comps[root], li)
		}
	}
	roots := make([]int, 0, len(comps))
	for r := range comps {
		roots = append(roots, r)
	}
	slices.Sort(roots)
	var exposed []int
	col := make([]int32, len(cells)) // cell -> column+1 within the component
	for _, root := range roots {
		var cellOf []int32
		var rows [][]entry
		for _, li := range comps[root] {
			l := s.lines[li]
			margin := l[len(l)-1]
			row := make([]entry, 0, len(lineHidden[li]))
			for _, i := range lineHidden[li] {
				j := col[i] - 1
				if j < 0 {
					j = int32(len(cellOf))
					col[i] = j + 1
					cellOf = append(cellOf, i)
				}
				v := uint64(1)
				if i == margin {
					v = modP - 1
				}
				row = append(row, entry{j, v})
			}
			slices.SortFunc(row, func(a, b entry) int { return int(a.col - b.col) })
			rows = append(rows, row)
		}
		for _, j := range determinedColumns(rows, len(cellOf)) {
			exposed = append(exposed, int(cellOf[j]))
		}
	}
	slices.Sort(exposed)
	return exposed
}

// Exact linear algebra modulo the Mersenne prime 2^61−1.

const modP = 1<<61 - 1

type entry struct {
	col int32
	v   uint64
}

func mulMod(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	r := (lo & modP) + (lo >> 61) + (hi << 3)
	r = (r & modP) + (r >> 61)
	if r >= modP {
		r -= modP
	}
	return r
}

func subMod(a, b uint64) uint64 {
	if a >= b {
		return a - b
	}
	return a + modP - b
}

func invMod(a uint64) uint64 {
	// a^(p-2)
	e := uint64(modP - 2)
	r := uint64(1)
	for e > 0 {
		if e&1 == 1 {
			r = mulMod(r, a)
		}
		a = mulMod(a, a)
		e >>= 1
	}
	return r
}

// axpy appends a − f·b (sorted sparse rows) to dst and returns it.
func axpy(dst, a []entry, f uint64, b []entry) []entry {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].col < b[j].col):
			dst = append(dst, a[i])
			i++
		case i == len(a) || b[j].col < a[i].col:
			dst = append(dst, entry{b[j].col, subMod(0, mulMod(f, b[j].v))})
			j++
		default:
			if v := subMod(a[i].v, mulMod(f, b[j].v)); v != 0 {
				dst = append(dst, entry{a[i].col, v})
			}
			i++
			j++
		}
	}
	return dst
}

// determinedColumns returns the columns j for which e_j lies in the row
// space of rows (ncols columns), in increasing order.
func determinedColumns(rows [][]entry, ncols int) []int {
	basis, pivot := rref(rows, ncols)
	var out []int
	for j, p := range pivot {
		if p >= 0 && len(basis[p]) == 1 {
			out = append(out, j)
		}
	}
	return out
}

// rref returns the reduced row echelon form of rows (sorted sparse rows
// over ncols columns; they are consumed): basis rows, each starting with
// its pivot (coefficient 1) followed by entries in free columns only, and
// for every column the index of the basis row it is the pivot of, or -1.
func rref(rows [][]entry, ncols int) (basis [][]entry, pivot []int32) {
	// Short rows first keeps the fill-in down.
	slices.SortStableFunc(rows, func(a, b []entry) int { return len(a) - len(b) })
	pivot = make([]int32, ncols)
	for i := range pivot {
		pivot[i] = -1
	}
	// Reductions alternate between two scratch rows; a row joins the basis
	// as a copy.
	var scratchA, scratchB []entry
	for _, r := range rows {
		for len(r) > 0 {
			lead := r[0].col
			p := pivot[lead]
			if p < 0 {
				r = slices.Clone(r)
				if inv := invMod(r[0].v); inv != 1 {
					for k := range r {
						r[k].v = mulMod(r[k].v, inv)
					}
				}
				pivot[lead] = int32(len(basis))
				basis = append(basis, r)
				break
			}
			scratchA = axpy(scratchA[:0], r, r[0].v, basis[p])
			r = scratchA
			scratchA, scratchB = scratchB, scratchA
		}
	}
	// Back substitution, from the last pivot to the first: a reduced row
	// holds its pivot and free columns only.
	scratch := make([]uint64, ncols)
	var touched []int32
	for lead := ncols - 1; lead >= 0; lead-- {
		p := pivot[lead]
		if p < 0 {
			continue
		}
		row := basis[p]
		reduce := false
		for _, e := range row[1:] {
			if pivot[e.col] >= 0 {
				reduce = true
				break
			}
		}
		if !reduce {
			continue
		}
		touched = touched[:0]
		for _, e := range row[1:] {
			if pivot[e.col] < 0 {
				scratch[e.col] = e.v
				touched = append(touched, e.col)
			}
		}
		for _, e := range row[1:] {
			if pivot[e.col] < 0 {
				continue
			}
			for _, f := range basis[pivot[e.col]][1:] { // free columns only
				if scratch[f.col] == 0 {
					touched = append(touched, f.col)
				}
				scratch[f.col] = subMod(scratch[f.col], mulMod(e.v, f.v))
			}
		}
		slices.Sort(touched)
		nrow := []entry{row[0]}
		for k, c := range touched {
			if k > 0 && touched[k-1] == c {
				continue
			}
			if scratch[c] != 0 {
				nrow = append(nrow, entry{c, scratch[c]})
			}
			scratch[c] = 0
		}
		basis[p] = nrow
	}
	return basis, pivot
}
