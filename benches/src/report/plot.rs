//! The SVG plot of a [`Report`]: per workload a panel of grouped bars on a
//! log scale.

use super::{Impl, Report, display_unit};
use crate::error::PlotError;
use crate::workloads::Workload;

impl Report {
    /// Grouped bars on a log scale: per workload a panel, per strategy a
    /// simulator bar and an OVMF bar (plus the raw loop and std on OVMF).
    pub fn svg(&self) -> Result<String, PlotError> {
        use plotters::prelude::*;
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (1500, 460)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| PlotError(e.to_string()))?;
            let root = root
                .titled(
                    "efisock Poll strategies: simulator prediction (blue) vs OVMF measurement (red), log scale",
                    ("sans-serif", 18),
                )
                .map_err(|e| PlotError(e.to_string()))?;
            let panels = root.split_evenly((1, 5));
            let mut labels: Vec<String> = self.strategies.clone();
            labels.push("raw loop".into());
            labels.push("std".into());
            for (panel, w) in panels.iter().zip(Workload::all()) {
                let mut vals = Vec::new();
                for (k, name) in labels.iter().enumerate() {
                    let i = match k {
                        k if k < self.strategies.len() => Impl::Efisock(name.clone()),
                        k if k == self.strategies.len() => Impl::RawLoop,
                        _ => Impl::Std,
                    };
                    vals.push((k, self.rate(false, &w, &i), self.rate(true, &w, &i)));
                }
                let all: Vec<f64> = vals
                    .iter()
                    .flat_map(|(_, a, b)| [*a, *b])
                    .flatten()
                    .filter(|v| *v > 0.0)
                    .collect();
                if all.is_empty() {
                    continue;
                }
                let lo = all.iter().cloned().fold(f64::INFINITY, f64::min) / 2.0;
                let hi = all.iter().cloned().fold(0.0, f64::max) * 2.0;
                let mut chart = ChartBuilder::on(panel)
                    .caption(
                        format!("{} ({})", w.name(), display_unit(&w)),
                        ("sans-serif", 14),
                    )
                    .margin(8)
                    .x_label_area_size(70)
                    .y_label_area_size(50)
                    .build_cartesian_2d(0f64..labels.len() as f64, (lo..hi).log_scale())
                    .map_err(|e| PlotError(e.to_string()))?;
                let names = labels.clone();
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(labels.len() * 2)
                    .x_label_formatter(&move |x| {
                        let k = x.floor() as usize;
                        if (x - k as f64 - 0.5).abs() < 0.3 {
                            names.get(k).cloned().unwrap_or_default()
                        } else {
                            String::new()
                        }
                    })
                    .x_label_style(
                        ("sans-serif", 10)
                            .into_font()
                            .transform(FontTransform::Rotate90),
                    )
                    .y_label_style(("sans-serif", 10))
                    .draw()
                    .map_err(|e| PlotError(e.to_string()))?;
                let bars = vals.iter().flat_map(|(k, s, o)| {
                    let x = *k as f64;
                    let mut v = Vec::new();
                    if let Some(s) = s {
                        v.push(Rectangle::new(
                            [(x + 0.1, lo), (x + 0.5, *s)],
                            BLUE.filled(),
                        ));
                    }
                    if let Some(o) = o {
                        v.push(Rectangle::new([(x + 0.5, lo), (x + 0.9, *o)], RED.filled()));
                    }
                    v
                });
                chart
                    .draw_series(bars)
                    .map_err(|e| PlotError(e.to_string()))?;
            }
            root.present().map_err(|e| PlotError(e.to_string()))?;
        }
        Ok(out)
    }
}
