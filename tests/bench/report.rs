//! The three outputs of a run: JSON for machines, a Markdown table for people, and a
//! latency-against-throughput plot (SVG).

use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

#[derive(Serialize)]
pub struct Report {
    pub label: String,
    pub started_at: String,
    pub command: String,
    pub machine: Machine,
    pub data: DataShape,
    /// Closed loops were measured in this many interleaved rounds.
    pub rounds: u32,
    pub runs: Vec<Run>,
}

#[derive(Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub load_average_before: [f64; 3],
    pub load_average_after: [f64; 3],
    pub client_runtime: String,
}

#[derive(Serialize)]
pub struct DataShape {
    pub practices: usize,
    pub roles: usize,
    pub users: usize,
    pub seconds_to_generate: f64,
}

#[derive(Serialize, Clone)]
pub struct Run {
    pub scenario: String,
    pub server: String,
    /// `closed` (concurrency callers) or `open` (a fixed rate).
    pub mode: String,
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub throughput: f64,
    pub latency_us: Latency,
    /// Against the same server's health Check, same mode and load, in the same run.
    pub vs_ceiling: Option<Ratio>,
}

#[derive(Serialize, Clone, Copy)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Serialize, Clone, Copy)]
pub struct Ratio {
    /// Throughput as a share of the ceiling's (1.0 = as fast as the health check).
    pub throughput: f64,
    /// p99 as a multiple of the ceiling's.
    pub p99: f64,
}

impl Latency {
    pub fn of(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        Self {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [
        fields.next().unwrap_or(0.0),
        fields.next().unwrap_or(0.0),
        fields.next().unwrap_or(0.0),
    ]
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!("Linux {}", k.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned())
}

fn ms(micros: u64) -> String {
    let ms = micros as f64 / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn load_of(run: &Run) -> String {
    match run.target_rate {
        Some(rate) => format!("{rate:.0}/s"),
        None => run.concurrency.to_string(),
    }
}

pub fn markdown(report: &Report) -> String {
    let m = &report.machine;
    let mut out = format!(
        "### {}\n\n{} cores ({}), {}; load average {:.2} before, {:.2} after; client: {}; \
         data: {} practices, {} roles, {} users (generated in {:.0} s); closed loops in {} \
         interleaved rounds; {}\n\n`{}`\n\n",
        report.label,
        m.cores,
        m.cpu_model,
        m.kernel,
        m.load_average_before[0],
        m.load_average_after[0],
        m.client_runtime,
        report.data.practices,
        report.data.roles,
        report.data.users,
        report.data.seconds_to_generate,
        report.rounds,
        report.started_at,
        report.command,
    );
    out.push_str(
        "| scenario | server | mode | in flight / rate | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | req/s vs ceiling | p99 vs ceiling |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in &report.runs {
        let (share, p99) = run.vs_ceiling.map_or(("".into(), "".into()), |r| {
            (
                format!("{:.0} %", r.throughput * 100.0),
                format!("{:.2}×", r.p99),
            )
        });
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            run.scenario,
            run.server,
            run.mode,
            load_of(run),
            run.throughput,
            ms(run.latency_us.p50),
            ms(run.latency_us.p90),
            ms(run.latency_us.p99),
            ms(run.latency_us.p999),
            ms(run.latency_us.max),
            run.errors,
            share,
            p99,
        ));
    }
    if let Some(run) = report.runs.iter().find(|r| r.first_error.is_some()) {
        out.push_str(&format!(
            "\nFirst error ({} {}): {}\n",
            run.scenario,
            load_of(run),
            run.first_error.as_deref().unwrap_or_default()
        ));
    }
    out
}

/// p99 latency against throughput, both on log scales: per scenario, its closed-loop runs as a
/// line through circles in the order of `--concurrency` and its open-loop runs as
/// crosses of the same colour.
pub fn plot(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    struct Series {
        name: String,
        closed: Vec<(f64, f64)>,
        open: Vec<(f64, f64)>,
    }
    let mut series: Vec<Series> = Vec::new();
    for run in report
        .runs
        .iter()
        .filter(|r| r.latency_us.p99 > 0 && r.throughput > 0.0)
    {
        let name = format!("{} ({})", run.scenario, run.server);
        let point = (run.throughput, run.latency_us.p99 as f64 / 1000.0);
        let index = match series.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                series.push(Series {
                    name,
                    closed: Vec::new(),
                    open: Vec::new(),
                });
                series.len() - 1
            }
        };
        if run.mode == "open" {
            series[index].open.push(point);
        } else {
            series[index].closed.push(point);
        }
    }
    let points = || {
        series
            .iter()
            .flat_map(|s| s.closed.iter().chain(s.open.iter()).copied())
    };
    let bounds = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if hi > 0.0 {
            (lo * 0.5, hi * 2.0)
        } else {
            (0.1, 10.0)
        }
    };
    let (min_x, max_x) = bounds(&mut points().map(|(x, _)| x));
    let (min_y, max_y) = bounds(&mut points().map(|(_, y)| y));

    let root = SVGBackend::new(path, (1100, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Praxis: p99 latency against throughput — {}", report.label),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((min_x..max_x).log_scale(), (min_y..max_y).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("throughput (requests/s, log scale); circles: closed loop, crosses: open loop")
        .y_desc("p99 latency (ms, log scale)")
        .draw()?;
    for (index, s) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.closed.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(s.closed.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        chart.draw_series(
            s.open
                .iter()
                .map(|p| Cross::new(*p, 5, color.stroke_width(2))),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
