//! Charts as server-rendered SVG: no JavaScript, no chart library, readable by a screen
//! reader (each chart is an image with a title and a text summary under it). Pure
//! functions from numbers to markup; the pages read the numbers from the database.

use std::fmt::Write;

/// One line or one set of bars.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: &'static str,
    /// A CSS colour.
    pub color: &'static str,
    pub values: Vec<f64>,
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// How a chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lines,
    /// Side by side, one bar per series at each point.
    Bars,
    /// One bar per point, the series stacked (for series that never overlap, such as
    /// one run's duration coloured by its outcome).
    Stacked,
}

/// A chart: `x_labels` are (index, text) pairs placed under those points.
#[derive(Debug)]
pub struct Chart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    /// The unit of a value, for the axis and the summary ("events/min").
    pub unit: &'a str,
    pub kind: Kind,
    pub series: Vec<Series>,
    pub x_labels: Vec<(usize, String)>,
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (at least 1): the axis top.
fn nice_max(v: f64) -> f64 {
    if v <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

/// A number for an axis or a summary: `1,234`, `12.5`, `0.25`.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let digits = format!("{}", v.abs() as i64);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{}{out}", if v < 0.0 { "-" } else { "" })
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An axis label: [`number`] without trailing zeros (`7.5`, not `7.50`).
fn axis(v: f64) -> String {
    let n = number(v);
    if n.contains('.') {
        n.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        n
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

impl Chart<'_> {
    /// The `<figure>`: the SVG and, under it, a legend that is also the text summary
    /// (total and peak of each series).
    pub fn render(&self) -> String {
        let n = self
            .series
            .iter()
            .map(|s| s.values.len())
            .max()
            .unwrap_or(0);
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max);
        let top = nice_max(max);
        let plot_w = W - LEFT - RIGHT;
        let plot_h = H - TOP - BOTTOM;
        let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
        let id = escape(self.id);
        let mut svg = String::with_capacity(8 * 1024);
        let _ = write!(
            svg,
            "<figure class=\"chart\" id=\"{id}\"><h2 class=\"chart-title\" id=\"{id}-t\">{}</h2><svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" preserveAspectRatio=\"xMidYMid meet\">\
             <title>{}</title>",
            escape(self.title),
            escape(self.title)
        );
        // Grid and y axis: four steps from 0 to the top.
        for i in 0..=4 {
            let v = top * f64::from(i) / 4.0;
            let yy = y(v);
            let _ = write!(
                svg,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e2e4ef\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">{}</text>",
                W - RIGHT,
                LEFT - 6.0,
                yy + 4.0,
                axis(v)
            );
        }
        let step = if n > 1 {
            plot_w / (n - 1) as f64
        } else {
            plot_w
        };
        let slot = if n > 0 { plot_w / n as f64 } else { plot_w };
        let x_of = |i: usize| match self.kind {
            Kind::Lines => LEFT + step * i as f64,
            Kind::Bars | Kind::Stacked => LEFT + slot * (i as f64 + 0.5),
        };
        for (i, label) in &self.x_labels {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">{}</text>",
                x_of(*i),
                H - 8.0,
                escape(label)
            );
        }
        match self.kind {
            Kind::Lines => {
                for s in &self.series {
                    let mut points = String::with_capacity(s.values.len() * 12);
                    for (i, v) in s.values.iter().enumerate() {
                        let _ = write!(points, "{:.1},{:.1} ", x_of(i), y(*v));
                    }
                    let _ = write!(
                        svg,
                        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>",
                        s.color,
                        points.trim_end()
                    );
                }
            }
            Kind::Stacked => {}
            Kind::Bars => {
                let k = self.series.len().max(1) as f64;
                let bar = (slot * 0.8 / k).max(1.0);
                for (j, s) in self.series.iter().enumerate() {
                    for (i, v) in s.values.iter().enumerate() {
                        if *v <= 0.0 {
                            continue;
                        }
                        let x = LEFT + slot * i as f64 + slot * 0.1 + bar * j as f64;
                        let yy = y(*v);
                        let _ = write!(
                            svg,
                            "<rect x=\"{x:.1}\" y=\"{yy:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}</title></rect>",
                            (TOP + plot_h - yy).max(0.5),
                            s.color,
                            escape(s.label),
                            number(*v)
                        );
                    }
                }
            }
        }
        if self.kind == Kind::Stacked {
            let bar = (slot * 0.8).min(40.0);
            let mut base = vec![0.0; n];
            for s in &self.series {
                for (i, v) in s.values.iter().enumerate() {
                    if *v <= 0.0 {
                        continue;
                    }
                    let (bottom, top_y) = (y(base[i]), y(base[i] + v));
                    base[i] += v;
                    let _ = write!(
                        svg,
                        "<rect x=\"{:.1}\" y=\"{top_y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}</title></rect>",
                        x_of(i) - bar / 2.0,
                        (bottom - top_y).max(0.5),
                        s.color,
                        escape(s.label),
                        number(*v)
                    );
                }
            }
        }
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#888\"/></svg>",
            W - RIGHT,
            TOP + plot_h,
            TOP + plot_h
        );
        let _ = write!(svg, "<figcaption id=\"{id}-d\"><ul class=\"legend\">");
        for s in &self.series {
            let total: f64 = s.values.iter().sum();
            let peak = s.values.iter().copied().fold(0.0, f64::max);
            let _ = write!(
                svg,
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{}: {} in all, peak {} {}</li>",
                s.color,
                escape(s.label),
                number(total),
                number(peak),
                escape(self.unit)
            );
        }
        svg.push_str("</ul></figcaption></figure>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_and_numbers_read_well() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(130.0), 200.0);
        assert_eq!(nice_max(4_900.0), 5_000.0);
        assert_eq!(number(1_234_567.0), "1,234,567");
        assert_eq!(number(12.5), "12.5");
        assert_eq!(number(0.25), "0.25");
    }

    #[test]
    fn a_chart_is_an_image_with_a_title_a_summary_and_escaped_text() {
        let chart = Chart {
            id: "c",
            title: "Events <per> minute",
            unit: "events/min",
            kind: Kind::Bars,
            series: vec![Series {
                label: "applied",
                color: "#2a7",
                values: vec![0.0, 3.0, 1.0],
            }],
            x_labels: vec![(0, "00:00".into())],
        };
        let svg = chart.render();
        assert!(svg.contains("role=\"img\""));
        assert!(
            svg.contains("<h2 class=\"chart-title\" id=\"c-t\">Events &lt;per&gt; minute</h2>")
        );
        assert!(svg.contains("aria-labelledby=\"c-t c-d\""));
        assert!(svg.contains("applied: 4 in all, peak 3 events/min"));
        assert_eq!(svg.matches("<rect").count(), 2, "a zero draws no bar");
    }
}
