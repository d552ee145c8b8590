//! The benchmark plot (SVG, drawn with plotters): each strategy's entry cost beside a direct
//! call's, the extra instructions a publication costs each consumer, and the producer's own
//! instructions per publication against core count, each panel with its axes, ticks, units and
//! legend.

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::Scale;

/// One colour per strategy, in the order the kernel announced them (repeating past the last).
const COLORS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The plot for the strategies called `order`, in that order: `strategies` (per-strategy
/// figures), `direct` (a direct call's instructions) and `scaling` (strategy -> cores ->
/// figures). A figure that is missing is drawn as nothing, never as zero.
pub fn render(
    order: &[String],
    strategies: &Map<String, Value>,
    direct: u64,
    scaling: &BTreeMap<String, BTreeMap<u32, Scale>>,
) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1200, 440)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let panels = root.split_evenly((1, 3));
        let get = |name: &str, k: &str| {
            strategies
                .get(name)
                .and_then(|v| v.get(k))
                .and_then(Value::as_u64)
        };
        let entry: Vec<Option<u64>> = order.iter().map(|n| get(n, "entry_insns")).collect();
        let disturb: Vec<Option<u64>> = order
            .iter()
            .map(|n| {
                let total = strategies.get(n)?.get("disturb_insns")?.get("total")?;
                Some(total.as_f64()?.round() as u64)
            })
            .collect();
        // Drawing errors only mean a panel is incomplete; the figures are in the table and JSON.
        let _ = bars(
            &panels[0],
            "Entry: instructions per call (PMU)",
            "instructions",
            order,
            &entry,
            Some(("direct call", direct)),
            false,
        );
        let _ = bars(
            &panels[1],
            "Disturbance: extra instructions per publication, per consumer",
            "instructions (log)",
            order,
            &disturb,
            None,
            true,
        );
        let _ = producer(&panels[2], order, scaling);
        let _ = root.present();
    }
    out
}

type Panel<'a, 'b> = DrawingArea<SVGBackend<'a>, Shift>;

/// One horizontal bar per strategy, named on the left (on a log axis if `log`), with an
/// optional reference line.
fn bars(
    area: &Panel<'_, '_>,
    title: &str,
    unit: &str,
    order: &[String],
    values: &[Option<u64>],
    reference: Option<(&str, u64)>,
    log: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let top = values
        .iter()
        .flatten()
        .copied()
        .chain(reference.map(|r| r.1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = order.len().max(1);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(120);
    // Segment i is bar i, the first strategy at the top.
    let row = |i: usize| n - 1 - i;
    let name = |s: &SegmentValue<usize>| match s {
        SegmentValue::CenterOf(i) if *i < n => order[row(*i)].clone(),
        _ => String::new(),
    };
    if log {
        let mut chart = builder
            .build_cartesian_2d((0.5f64..top * 2.0).log_scale(), (0..n - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&name)
            .x_desc(unit)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)? as f64;
            Some(Rectangle::new(
                [
                    (0.5, SegmentValue::Exact(row(i))),
                    (v.max(0.5), SegmentValue::Exact(row(i) + 1)),
                ],
                color(i).filled(),
            ))
        }))?;
    } else {
        let right = (top * 1.2).ceil();
        let mut chart = builder.build_cartesian_2d(0f64..right, (0..n - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&name)
            .x_desc(unit)
            // Whole instructions: one tick per step, up to ten steps.
            .x_labels((right as usize + 1).min(11))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart.draw_series(values.iter().enumerate().filter_map(|(i, v)| {
            Some(Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row(i))),
                    ((*v)? as f64, SegmentValue::Exact(row(i) + 1)),
                ],
                color(i).filled(),
            ))
        }))?;
        if let Some((label, at)) = reference {
            let at = at as f64;
            chart
                .draw_series(LineSeries::new(
                    [(at, SegmentValue::Exact(0)), (at, SegmentValue::Exact(n))],
                    BLACK.stroke_width(2),
                ))?
                .label(format!("{label}: {at}"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.stroke_width(2)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    Ok(())
}

/// The producer's own instructions per publication against core count, one line per strategy.
fn producer(
    area: &Panel<'_, '_>,
    order: &[String],
    scaling: &BTreeMap<String, BTreeMap<u32, Scale>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let cores: Vec<u32> = {
        let mut c: Vec<u32> = scaling.values().flat_map(|r| r.keys().copied()).collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let top = scaling
        .values()
        .flat_map(|r| r.values().map(|v| v.producer_insns))
        .max()
        .unwrap_or(10)
        .max(10) as f64;
    // Core counts are spaced evenly (they double), each labelled with its count.
    let at = |n: u32| cores.iter().position(|&c| c == n).unwrap_or(0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Producer: own instructions per publication",
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (0..cores.len().max(1)).into_segmented(),
            (10f64.min(top)..top * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("cores (virt-gicv3)")
        .y_desc("instructions (log)")
        .x_labels(cores.len().max(1))
        .x_label_formatter(&|s| match s {
            SegmentValue::CenterOf(i) => cores.get(*i).map(u32::to_string).unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (k, name) in order.iter().enumerate() {
        let Some(rows) = scaling.get(name) else {
            continue;
        };
        let c = color(k);
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|(&n, r)| {
                    (
                        SegmentValue::CenterOf(at(n)),
                        r.producer_insns.max(1) as f64,
                    )
                }),
                c.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_every_strategy_and_core_count_with_axes() {
        let order: Vec<String> = ["branch-flip", "ipi-sync", "seq-check"]
            .map(String::from)
            .to_vec();
        let mut m = Map::new();
        for (i, n) in order.iter().enumerate() {
            m.insert(
                n.clone(),
                json!({"entry_insns": 2 + i, "disturb_insns": {"total": 100.0 * (i + 1) as f64}}),
            );
        }
        let mut sc = BTreeMap::new();
        sc.insert(
            "ipi-sync".to_string(),
            BTreeMap::from([
                (
                    2,
                    Scale {
                        producer_insns: 150,
                        latency_ns: 1000,
                    },
                ),
                (
                    32,
                    Scale {
                        producer_insns: 400,
                        latency_ns: 9000,
                    },
                ),
            ]),
        );
        let svg = render(&order, &m, 1, &sc);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for n in &order {
            assert!(svg.contains(n.as_str()), "{n}");
        }
        for text in [
            "instructions",
            "instructions (log)",
            "cores (virt-gicv3)",
            "direct call: 1",
        ] {
            assert!(svg.lines().any(|l| l.trim() == text), "{text}");
        }
        // plotters writes each label's text on a line of its own.
        let labelled = |t: &str| svg.lines().any(|l| l.trim() == t);
        assert!(labelled("2") && labelled("32") && svg.contains("<polyline"));
    }
}
