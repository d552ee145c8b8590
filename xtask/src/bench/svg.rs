//! The benchmark plot, as plain SVG text: disturbance per strategy (bars, log scale) and
//! publication latency against core count (lines).

use protocol::Strategy;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The strategies in report order, by name.
const STRATEGIES: [&str; Strategy::ALL.len()] = Strategy::NAMES;

const COLORS: [&str; Strategy::ALL.len()] = [
    "#1f77b4", "#ff7f0e", "#e377c2", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn log_y(v: f64, max: f64, height: f64) -> f64 {
    let v = v.max(1.0).log10();
    let max = max.max(10.0).log10();
    height - v / max * height
}

/// The plot for `strategies` (per-strategy figures) and `scaling` (strategy -> cores -> (latency,
/// disturbance, throughput)).
pub fn render(
    strategies: &Map<String, Value>,
    scaling: &BTreeMap<String, BTreeMap<u32, (u64, u64, u64)>>,
) -> String {
    let (w, h, pad) = (1000.0, 440.0, 70.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    // Left: disturbance bars.
    let (bw, bh) = (400.0, h - 2.0 * pad - 10.0);
    let get = |name: &str, k: &str| {
        strategies
            .get(name)
            .and_then(|v| v.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0) as f64
    };
    let max = STRATEGIES
        .iter()
        .map(|n| get(n, "disturb_max_ns"))
        .fold(10.0, f64::max);
    let _ = write!(
        s,
        r#"<text x="20" y="24" font-size="14">Disturbance: largest extra time one publication adds to an iteration (virtual ns, log)</text>"#
    );
    for (i, name) in STRATEGIES.iter().enumerate() {
        let v = get(name, "disturb_max_ns");
        let x = pad + i as f64 * (bw / 6.0);
        let y = pad + log_y(v, max, bh);
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
            bw / 6.0 - 8.0,
            pad + bh - y,
            COLORS[i]
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v}</text>"#,
            x + bw / 12.0 - 4.0,
            y - 4.0
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" transform="rotate(-35 {:.1} {:.1})">{name}</text>"#,
            x + bw / 12.0,
            pad + bh + 14.0,
            x + bw / 12.0,
            pad + bh + 14.0
        );
    }
    // Right: latency against cores.
    let (x0, lw) = (pad + bw + 90.0, w - (pad + bw + 90.0) - 40.0);
    let cores: Vec<u32> = scaling
        .values()
        .flat_map(|r| r.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let lmax = scaling
        .values()
        .flat_map(|r| r.values().map(|v| v.0 as f64))
        .fold(10.0, f64::max);
    let _ = write!(
        s,
        r#"<text x="{x0}" y="48" font-size="14">Latency (virtual ns, log) by core count, virt-gicv3</text>"#
    );
    let _ = write!(
        s,
        r#"<line x1="{x0}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        pad + bh,
        x0 + lw,
        pad + bh
    );
    let xs = |i: usize| {
        x0 + if cores.len() > 1 {
            i as f64 * lw / (cores.len() - 1) as f64
        } else {
            0.0
        }
    };
    for (i, n) in cores.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{n}</text>"#,
            xs(i),
            pad + bh + 16.0
        );
    }
    for (k, name) in STRATEGIES.iter().enumerate() {
        let Some(rows) = scaling.get(*name) else {
            continue;
        };
        let pts: Vec<String> = cores
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                rows.get(n)
                    .map(|r| format!("{:.1},{:.1}", xs(i), pad + log_y(r.0 as f64, lmax, bh)))
            })
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            COLORS[k],
            pts.join(" ")
        );
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{}">{name}</text>"#,
            x0 + 8.0,
            pad + 4.0 + 14.0 * k as f64,
            COLORS[k]
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_every_strategy_and_core_count() {
        let mut m = Map::new();
        for n in STRATEGIES {
            m.insert(n.into(), json!({"disturb_max_ns": 100}));
        }
        let mut sc = BTreeMap::new();
        sc.insert(
            "ipi-sync".to_string(),
            BTreeMap::from([(2, (1000, 10, 5)), (32, (9000, 10, 5))]),
        );
        let svg = render(&m, &sc);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for n in STRATEGIES {
            assert!(svg.contains(n), "{n}");
        }
        assert!(svg.contains(">32<") && svg.contains("polyline"));
    }
}
