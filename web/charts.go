package web

// chartSpec is the JSON web/static/charts.js draws a chart from: times in
// Unix seconds and one series of values per line or bar.
type chartSpec struct {
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
	Bars   bool          `json:"bars"`
	Height int           `json:"height"`
}

// chartSeries is one line or set of bars of a chart.
type chartSeries struct {
	Label  string  `json:"label"`
	Values []int64 `json:"values"`
}
