//! The report's plots, drawn as SVG with plotters.

use plotters::prelude::*;

use crate::report::DeviceInfo;
use crate::Row;

type Series = (String, Vec<(f64, f64)>);

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 1.5, hi * 1.5)
    }
}

/// Draws one 960×480 chart into SVG text; a drawing error becomes a short HTML message instead.
fn render(
    draw: impl FnOnce(
        &DrawingArea<SVGBackend, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>>,
) -> String {
    let mut svg = String::new();
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (960, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    match result {
        Ok(()) => svg,
        Err(e) => format!("<p>plot failed: {e}</p>"),
    }
}

/// A log-log line chart; `ceilings` are drawn as dashed horizontal lines.
fn lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    ceilings: &[(String, f64)],
) -> String {
    render(|root| {
        let (x0, x1) = bounds(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
        let (y0, y1) = bounds(
            series
                .iter()
                .flat_map(|s| s.1.iter().map(|p| p.1))
                .chain(ceilings.iter().map(|c| c.1)),
        );
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        for (i, (name, v)) in ceilings.iter().enumerate() {
            let color = Palette99::pick(series.len() + i).to_rgba();
            let dashes: Vec<(f64, f64)> = (0..40)
                .map(|k| x0 * (x1 / x0).powf(k as f64 / 39.0))
                .map(|x| (x, *v))
                .collect();
            chart
                .draw_series(
                    dashes
                        .chunks(2)
                        .map(|c| PathElement::new(c.to_vec(), color.stroke_width(1))),
                )?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    })
}

/// Grouped bars on a log axis: `groups` (x labels) × `bars` (legend), values in ms.
fn bars(
    title: &str,
    y_desc: &str,
    groups: &[String],
    bars: &[String],
    values: &[Vec<Option<f64>>],
) -> String {
    render(|root| {
        let (y0, y1) = bounds(values.iter().flatten().flatten().copied());
        let n = groups.len().max(1) as f64;
        let labels = groups.to_vec();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..n - 0.5, (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.len().max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(y_desc)
            .draw()?;
        let width = 0.8 / bars.len().max(1) as f64;
        for (b, name) in bars.iter().enumerate() {
            let color = Palette99::pick(b).to_rgba();
            let rects: Vec<Rectangle<(f64, f64)>> = values
                .iter()
                .enumerate()
                .filter_map(|(g, row)| row.get(b).copied().flatten().map(|v| (g, v)))
                .map(|(g, v)| {
                    let x = g as f64 - 0.4 + b as f64 * width;
                    Rectangle::new([(x, y0), (x + width * 0.95, v)], color.filled())
                })
                .collect();
            chart
                .draw_series(rects)?
                .label(name.clone())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

fn device_names(rows: &[Row]) -> Vec<String> {
    let mut names: Vec<String> = vec![];
    for r in rows {
        if !names.contains(&r.device) {
            names.push(r.device.clone());
        }
    }
    names
}

/// All plots of the report, as (title, SVG).
pub(crate) fn all(rows: &[Row], devices: &[DeviceInfo]) -> Vec<(String, String)> {
    let mut out = vec![];
    let names = device_names(rows);
    // 1. matmul throughput against size.
    let series: Vec<Series> = names
        .iter()
        .map(|d| {
            let pts = rows
                .iter()
                .filter(|r| r.section == "matmul sweep" && &r.device == d)
                .filter_map(|r| r.gflops().map(|g| (r.shape[0] as f64, g)))
                .collect();
            (d.clone(), pts)
        })
        .collect();
    let ceilings: Vec<(String, f64)> = devices
        .iter()
        .filter_map(|d| {
            d.peak_gflops
                .map(|p| (format!("{} fp32 ceiling", d.name), p))
        })
        .collect();
    out.push((
        "Matmul n×n×n: GFLOP/s against n (JIT cached)".to_string(),
        lines("matmul GFLOP/s", "n", "GFLOP/s", &series, &ceilings),
    ));
    // 2. memory-bound ops against size.
    let mut series: Vec<Series> = vec![];
    for d in &names {
        for (section, op) in [("elementwise sweep", "gelu"), ("softmax sweep", "softmax")] {
            let pts = rows
                .iter()
                .filter(|r| r.section == section && &r.device == d)
                .filter_map(|r| r.gbps().map(|g| (r.elements() as f64, g)))
                .collect();
            series.push((format!("{op} on {d}"), pts));
        }
    }
    let ceilings: Vec<(String, f64)> = devices
        .iter()
        .filter_map(|d| {
            d.peak_gbps
                .map(|p| (format!("{} bandwidth ceiling", d.name), p))
        })
        .collect();
    out.push((
        "GELU and softmax: GB/s against elements (JIT cached)".to_string(),
        lines(
            "GB/s (read + written)",
            "elements",
            "GB/s",
            &series,
            &ceilings,
        ),
    ));
    // 3. off, cold and cached per op, one chart per device.
    let modes = ["off", "cold", "cached"];
    for d in &names {
        let table: Vec<&Row> = rows
            .iter()
            .filter(|r| r.section == "table" && r.mode == "cached" && &r.device == d)
            .collect();
        let groups: Vec<String> = table.iter().map(|r| short_op(&r.op)).collect();
        let values: Vec<Vec<Option<f64>>> = table
            .iter()
            .map(|c| {
                modes
                    .iter()
                    .map(|m| {
                        rows.iter()
                            .find(|x| {
                                x.section == "table"
                                    && x.op == c.op
                                    && &x.device == d
                                    && x.mode == *m
                            })
                            .filter(|x| x.ok())
                            .map(|x| x.median())
                    })
                    .collect()
            })
            .collect();
        out.push((
            format!("{d}: JIT off, cold (compile included) and cached per op (ms, log scale)"),
            bars(
                &format!("per-call time on {}", short(d)),
                "ms",
                &groups,
                &modes.map(String::from),
                &values,
            ),
        ));
    }
    // 4. fused against unfused.
    let mut groups = vec![];
    let mut values = vec![];
    for d in &names {
        let get = |op: &str, mode: &str| {
            rows.iter()
                .find(|x| x.section == "table" && x.op == op && &x.device == d && x.mode == mode)
                .filter(|x| x.ok())
                .map(|x| x.median())
        };
        groups.push(short(d));
        values.push(vec![
            get("gelu", "cached"),
            get("8-op elementwise chain", "cached"),
            get("8-op elementwise chain", "off"),
        ]);
    }
    let legend = [
        "1 op (gelu)",
        "8-op chain, fused",
        "8-op chain, unfused (JIT off)",
    ]
    .map(String::from);
    out.push((
        "Fusion: an 8-op chain costs about one op when fused (ms, log scale)".to_string(),
        bars("fusion", "ms", &groups, &legend, &values),
    ));
    out
}

fn short_op(op: &str) -> String {
    match op {
        "softmax (last axis)" => "softmax".into(),
        "8-op elementwise chain" => "8-op chain".into(),
        "matmul + bias + gelu" => "matmul+bias+gelu".into(),
        other => other.into(),
    }
}

fn short(name: &str) -> String {
    name.split(['(', ','])
        .next()
        .unwrap_or(name)
        .trim()
        .to_string()
}
