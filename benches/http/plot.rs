//! PNG plots, drawn by matplotlib in a virtualenv the suite creates under target/ (PyPI is the
//! one place it installs from).

use std::path::Path;
use std::process::Command;

use crate::report::Row;

const SCRIPT: &str = r#"
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
first_floor = next((r["store"] for r in rows if r["what"] == "floor"), "")
out = sys.argv[2]
fig, ax = plt.subplots(figsize=(7, 4))
for store in ["memory", "sqlite", "postgres"]:
    pts = sorted((int(r["pool"]), float(r["rps"])) for r in rows if r["store"] == store and r["scenario"] == "access+match pairs" and r["conns"] == "64")
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=store)
floor = [float(r["rps"]) for r in rows if r["what"] == "floor" and r["conns"] == "64" and r["store"] == first_floor]
if floor:
    ax.axhline(floor[0], color="grey", linestyle="--", label="floor (fixed JSON)")
ax.set_xscale("log"); ax.set_xlabel("numbers in the pool"); ax.set_ylabel("requests/s (access+match, 64 conns)")
ax.set_ylim(bottom=0); ax.legend(); ax.set_title("Throughput vs pool size")
fig.tight_layout(); fig.savefig(out + "/throughput_vs_pool.png", dpi=110)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
series = [("floor", lambda r: r["what"] == "floor" and r["store"] == first_floor)] + [(s, (lambda s: lambda r: r["store"] == s and r["pool"] == "10000" and r["scenario"] == "request-access")(s)) for s in ["memory", "sqlite", "postgres"]]
for name, pick in series:
    pts = sorted((int(r["conns"]), float(r["rps"]), float(r["p99"])) for r in rows if pick(r))
    if pts:
        a1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        a2.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=name)
a1.set_xlabel("connections"); a1.set_ylabel("requests/s"); a1.set_ylim(bottom=0); a1.legend(); a1.set_title("request-access throughput")
a2.set_xlabel("connections"); a2.set_ylabel("p99 latency (ms)"); a2.set_ylim(bottom=0); a2.legend(); a2.set_title("request-access p99")
fig.tight_layout(); fig.savefig(out + "/vs_connections.png", dpi=110)
"#;

pub fn draw(_rows: &[Row]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            eprintln!("plots skipped: python3 -m venv failed");
            return;
        }
    }
    let has_mpl = Command::new(&python)
        .args(["-c", "import matplotlib"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_mpl
        && !Command::new(&python)
            .args(["-m", "pip", "install", "-q", "matplotlib"])
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!("plots skipped: pip install matplotlib failed");
        return;
    }
    let out = root.join("docs/perf");
    let _ = std::fs::create_dir_all(&out);
    let script = root.join("target/bench/plot.py");
    let _ = std::fs::write(&script, SCRIPT);
    let ok = Command::new(&python)
        .arg(&script)
        .arg(root.join("target/bench/results.csv"))
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    eprintln!(
        "{}",
        if ok {
            "plots written to docs/perf/"
        } else {
            "plot script failed"
        }
    );
}
