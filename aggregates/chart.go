package aggregates

import (
	"cmp"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/sealgate/sealgate/redact"
)

// MaxChartTeams is how many teams Chart draws besides "all teams": the
// busiest ones; the legend says how many more there are.
const MaxChartTeams = 12

// chartDPI: a chart of width×height pixels is drawn on a canvas of
// width×height at this resolution (and an SVG of the same size in CSS
// pixels).
const chartDPI = 96

var suppressedColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}

// Chart draws the message volume of t over time, one line per team (all
// channel types), "all teams" thicker, as a PNG or SVG image of width ×
// height pixels (format "png" or "svg"). A line has a gap where a team's
// cell was suppressed, and the time is marked with a red × on the time
// axis; it has a gap too on a day the team was not named (folded into
// other teams). An hour without a cell on a day the team was named is a
// zero: no event.
func Chart(t redact.Table, w io.Writer, format string, width, height int) error {
	if format != "png" && format != "svg" {
		return fmt.Errorf("aggregates: chart format %q, want png or svg", format)
	}
	if width < 200 || height < 150 || width > 10000 || height > 10000 {
		return fmt.Errorf("aggregates: chart of %d×%d pixels, want 200×150 to 10000×10000", width, height)
	}
	p, legend, names := buildChart(t)
	wl := vg.Length(width) * vg.Inch / chartDPI
	hl := vg.Length(height) * vg.Inch / chartDPI

	switch format {
	case "png":
		img := image.NewRGBA(image.Rect(0, 0, width, height))
		c := vgimg.NewWith(vgimg.UseImage(img), vgimg.UseDPI(chartDPI))
		drawChart(p, &legend, names, draw.New(c))
		return png.Encode(w, c.Image()) // the canvas draws on a copy of img
	default:
		c := vgsvg.New(wl, hl)
		drawChart(p, &legend, names, draw.New(c))
		_, err := c.WriteTo(w)
		return err
	}
}

// drawChart draws the plot with the legend in a column on its right.
func drawChart(p *plot.Plot, legend *plot.Legend, names []string, dc draw.Canvas) {
	var lw vg.Length
	for _, e := range names {
		lw = max(lw, legend.TextStyle.Width(e))
	}
	if lw > 0 {
		lw += legend.ThumbnailWidth + 3*legend.TextStyle.Font.Size
	}
	lw = min(lw, dc.Max.X/3) // a very long team name is cut, not the plot
	p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
	if lw > 0 {
		top := p.Title.TextStyle.Height(p.Title.Text) + 2*p.Title.Padding
		legend.Draw(draw.Crop(dc, dc.Max.X-dc.Min.X-lw+legend.TextStyle.Font.Size, 0, 0, -top))
	}
}

type series struct {
	team  string
	total int64
	// per slot: value, and whether the team has a point there
	val  []float64
	has  []bool
	supp []bool
}

// buildChart returns the plot, its legend (drawn apart, beside the plot)
// and the legend's entries.
func buildChart(t redact.Table) (*plot.Plot, plot.Legend, []string) {
	p := plot.New()
	p.BackgroundColor = color.White
	by := "day"
	if t.By == redact.Hour {
		by = "hour"
	}
	p.X.Label.Text = "time (UTC)"
	p.Y.Label.Text = "messages per " + by
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.ThumbnailWidth = vg.Points(20)
	var names []string
	addLegend := func(name string, th plot.Thumbnailer) {
		legend.Add(name, th)
		names = append(names, name)
	}

	// The time slots: every start the table has a cell of all types for.
	var slots []time.Time
	for i := range t.Rows {
		if r := &t.Rows[i]; r.ChannelType == redact.AllTypes {
			slots = append(slots, r.Start.UTC())
		}
	}
	slices.SortFunc(slots, func(a, b time.Time) int { return a.Compare(b) })
	slots = slices.CompactFunc(slots, func(a, b time.Time) bool { return a.Equal(b) })
	slotOf := make(map[int64]int, len(slots))
	for i, s := range slots {
		slotOf[s.Unix()] = i
	}

	byTeam := map[string]*series{}
	named := map[string]map[int64]bool{} // team -> days it has cells on
	for i := range t.Rows {
		r := &t.Rows[i]
		if named[r.Team] == nil {
			named[r.Team] = map[int64]bool{}
		}
		named[r.Team][floorDiv(r.Start.Unix(), 86400)] = true
		if r.ChannelType != redact.AllTypes {
			continue
		}
		s := byTeam[r.Team]
		if s == nil {
			s = &series{team: r.Team, val: make([]float64, len(slots)), has: make([]bool, len(slots)), supp: make([]bool, len(slots))}
			byTeam[r.Team] = s
		}
		j := slotOf[r.Start.Unix()]
		if r.Suppressed {
			s.supp[j] = true
			continue
		}
		s.val[j], s.has[j] = float64(r.Messages), true
		s.total += r.Messages
	}
	// No cell on a day the team was named: a zero.
	for _, s := range byTeam {
		for j, sl := range slots {
			if !s.has[j] && !s.supp[j] && named[s.team][floorDiv(sl.Unix(), 86400)] {
				s.has[j] = true
			}
		}
	}

	var all *series
	var teams []*series
	for _, s := range byTeam {
		if s.team == redact.AllTeams {
			all = s
		} else {
			teams = append(teams, s)
		}
	}
	slices.SortFunc(teams, func(a, b *series) int {
		if c := cmp.Compare(b.total, a.total); c != 0 {
			return c
		}
		return cmp.Compare(a.team, b.team)
	})
	hidden := 0
	if len(teams) > MaxChartTeams {
		hidden = len(teams) - MaxChartTeams
		teams = teams[:MaxChartTeams]
	}

	// A cell is drawn at the middle of its hour or day.
	step := time.Hour
	if t.By == redact.Day {
		step = 24 * time.Hour
	}
	xs := make([]float64, len(slots))
	for i, s := range slots {
		xs[i] = float64(s.Add(step / 2).Unix())
	}
	var suppXs []float64
	seenSupp := map[int]bool{}
	drawSeries := func(s *series, style draw.LineStyle, name string) {
		addLegend(name, &plotter.Line{LineStyle: style})
		var run plotter.XYs
		flush := func() {
			switch len(run) {
			case 0:
			case 1: // a lone point: a dot, as a line of one point is not drawn
				if sc, err := plotter.NewScatter(run); err == nil {
					sc.GlyphStyle = draw.GlyphStyle{Color: style.Color, Radius: style.Width + vg.Points(1), Shape: draw.CircleGlyph{}}
					p.Add(sc)
				}
			default:
				if l, err := plotter.NewLine(run); err == nil {
					l.LineStyle = style
					p.Add(l)
				}
			}
			run = nil
		}
		for j := range slots {
			if s.supp[j] && !seenSupp[j] {
				seenSupp[j] = true
				suppXs = append(suppXs, xs[j])
			}
			if !s.has[j] {
				flush()
				continue
			}
			run = append(run, plotter.XY{X: xs[j], Y: s.val[j]})
		}
		flush()
	}
	if all != nil {
		drawSeries(all, draw.LineStyle{Color: color.Black, Width: vg.Points(2.5)}, TeamName(redact.AllTeams))
	}
	for i, s := range teams {
		drawSeries(s, draw.LineStyle{Color: plotutil.Color(i), Width: vg.Points(1), Dashes: plotutil.Dashes(i / len(plotutil.DefaultColors))}, TeamName(s.team))
	}
	if len(suppXs) > 0 {
		pts := make(plotter.XYs, len(suppXs))
		for i, x := range suppXs {
			pts[i] = plotter.XY{X: x}
		}
		if sc, err := plotter.NewScatter(pts); err == nil {
			sc.GlyphStyle = draw.GlyphStyle{Color: suppressedColor, Radius: vg.Points(3.5), Shape: boldCross{}}
			p.Add(sc)
			addLegend("suppressed", sc)
		}
	}
	if hidden > 0 {
		addLegend(fmt.Sprintf("(%d more teams not drawn)", hidden), &plotter.Line{LineStyle: draw.LineStyle{Color: color.Transparent}})
	}

	if len(slots) == 0 {
		p.Title.Text = fmt.Sprintf("Messages per %s by team: no data (k = %d)", by, t.K)
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
		p.X.Tick.Marker = plot.ConstantTicks(nil)
		p.Y.Tick.Marker = plot.ConstantTicks(nil)
	} else {
		first, last := slots[0], slots[len(slots)-1]
		span := "2006-01-02"
		p.Title.Text = fmt.Sprintf("Messages per %s by team, %s to %s (k = %d)", by, first.Format(span), last.Format(span), t.K)
		p.Y.Min = 0
		p.Y.Max = max(p.Y.Max, 1) * 1.05
		p.Y.Tick.Marker = countTicker{}
		p.X.Min, p.X.Max = float64(first.Unix()), float64(last.Add(step).Unix())
		p.X.Tick.Marker = timeTicker{}
	}
	p.Title.Padding = vg.Points(6)
	return p, legend, names
}

// boldCross is an × drawn thicker than draw.CrossGlyph.
type boldCross struct{}

func (boldCross) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(1.8)})
	r := sty.Radius
	c.Stroke(vg.Path{{Type: vg.MoveComp, Pos: vg.Point{X: pt.X - r, Y: pt.Y - r}}, {Type: vg.LineComp, Pos: vg.Point{X: pt.X + r, Y: pt.Y + r}}})
	c.Stroke(vg.Path{{Type: vg.MoveComp, Pos: vg.Point{X: pt.X - r, Y: pt.Y + r}}, {Type: vg.LineComp, Pos: vg.Point{X: pt.X + r, Y: pt.Y - r}}})
}

// timeTicker puts labelled ticks on whole UTC hours or days, at most about
// eight of them.
type timeTicker struct{}

func (timeTicker) Ticks(lo, hi float64) []plot.Tick {
	steps := []int64{1, 2, 3, 6, 12, 24, 48, 72, 7 * 24, 14 * 24, 28 * 24, 56 * 24, 91 * 24, 182 * 24, 364 * 24}
	hours := (hi - lo) / 3600
	step := steps[len(steps)-1]
	for _, s := range steps {
		if hours/float64(s) <= 8 {
			step = s
			break
		}
	}
	layout := "2006-01-02"
	if step < 24 {
		layout = "01-02 15:04"
	}
	var ticks []plot.Tick
	first := floorDiv(int64(lo)+step*3600-1, step*3600) * step * 3600
	for x := first; float64(x) <= hi; x += step * 3600 {
		ticks = append(ticks, plot.Tick{Value: float64(x), Label: time.Unix(x, 0).UTC().Format(layout)})
	}
	return ticks
}

// countTicker is plot.DefaultTicks with counts written as integers.
type countTicker struct{}

func (countTicker) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
