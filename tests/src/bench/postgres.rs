//! The alternative many would build: one central PostgreSQL in the town,
//! wards inserting into it directly. Measured on the same machine in the
//! same run, with PostgreSQL's own tools (`pgbench`, `psql`), on a private
//! cluster: `initdb` in the run directory, `pg_ctl` start with a Unix socket
//! only (no TCP port, so nothing collides), stopped and removed at the end.
//! Settings are PostgreSQL's defaults, including `fsync = on` and
//! `synchronous_commit = on`: a committed insert is as durable as a ward's
//! "recorded".
//!
//! - inserts: one event per transaction from 1 client and from 16 clients,
//!   and 100 events per transaction (one multi-row `INSERT`) from 1 client,
//!   into a table with the indexes the overview query needs. Each row is the
//!   envelope JSON (`jsonb`) plus the columns a query filters on.
//! - the overview query: the same events the catch-up stage recorded (the
//!   load file written while the wards' logs were filled, `\copy`-ed in),
//!   then one SQL statement computing what the town's overview shows for
//!   the town and one ward in one year — the latest observation of each
//!   indicator per ward, summed for the town; cases counted in the year by
//!   category (a state counts while open, an incident in its year) and how
//!   many were supported; the population — run by 64 `pgbench` clients, its
//!   latency read from `pgbench`'s per-transaction log.
//!
//! Binaries: `$TREEM_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `pg_config --bindir`. As root, the server runs as the `postgres`
//! user (`runuser`), which PostgreSQL requires; the clients run as we do.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::Command;
use treem_proto::Envelope;

use super::Scratch;
use super::stats::{Latencies, rate};
use super::system::OVERVIEW_WARD;
use super::workload::CURRENT_YEAR;

/// The file of envelopes to load, one JSON document per line in `COPY`'s
/// text format, written while the wards' logs are filled.
pub struct CopyFile {
    pub path: PathBuf,
    writer: BufWriter<File>,
    pub lines: u64,
    error: Option<std::io::Error>,
}

impl CopyFile {
    pub fn create(path: PathBuf) -> anyhow::Result<CopyFile> {
        let writer = BufWriter::new(File::create(&path).with_context(|| format!("create {}", path.display()))?);
        Ok(CopyFile { path, writer, lines: 0, error: None })
    }

    /// Appends one envelope. JSON has no raw tab or newline; its backslashes
    /// are doubled for `COPY`'s text format.
    pub fn push(&mut self, env: &Envelope) {
        let json = String::from_utf8(env.encode()).expect("JSON is UTF-8").replace('\\', "\\\\");
        if let Err(e) = writeln!(self.writer, "{json}") {
            self.error.get_or_insert(e);
        }
        self.lines += 1;
    }

    pub fn finish(mut self) -> anyhow::Result<(PathBuf, u64)> {
        if let Some(e) = self.error.take() {
            return Err(e).context("write the PostgreSQL load file");
        }
        self.writer.flush()?;
        Ok((self.path, self.lines))
    }
}

/// What the PostgreSQL stages measured.
#[derive(Debug, Default, Clone)]
pub struct PgFigures {
    pub version: String,
    pub insert_1: f64,
    pub insert_16: f64,
    pub insert_batch: f64,
    pub loaded: u64,
    pub load_rate: f64,
    pub query: Latencies,
    pub query_per_sec: f64,
}

const SCHEMA: &str = "
CREATE TABLE events (
  id bigserial PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE,
  ward text NOT NULL,
  seq bigint NOT NULL,
  kind text NOT NULL,
  year smallint,
  recorded_at timestamptz NOT NULL,
  doc jsonb NOT NULL
);
CREATE INDEX events_by_kind_year ON events (kind, year, ward, seq);
CREATE INDEX events_by_case ON events (kind, ((doc->'body'->>'case_id')));
CREATE TABLE events_insert (LIKE events INCLUDING ALL);
CREATE TABLE load (doc jsonb NOT NULL);
";

/// The overview of one year for the town and one ward (see the module doc).
fn overview_sql(year: u16, ward: &str) -> String {
    format!(
        "WITH obs AS (
  SELECT DISTINCT ON (ward, doc->'body'->>'indicator') ward, doc->'body'->>'indicator' AS code,
         (doc->'body'->>'numerator')::bigint AS num, (doc->'body'->>'denominator')::bigint AS den
  FROM events WHERE kind = 'indicator.observed' AND year = {year}
  ORDER BY ward, doc->'body'->>'indicator', seq DESC),
pop AS (
  SELECT DISTINCT ON (ward) ward, doc->'body'->'figures' AS figures
  FROM events WHERE kind = 'population.reported' AND year = {year} ORDER BY ward, seq DESC),
opened AS (
  SELECT ward, doc->'body'->>'case_id' AS case_id, doc->'body'->>'category' AS category, year
  FROM events WHERE kind = 'case.opened' AND year <= {year}),
closed AS (
  SELECT doc->'body'->>'case_id' AS case_id, min(year) AS year FROM events WHERE kind = 'case.closed' GROUP BY 1),
counted AS (
  SELECT o.ward, o.category, o.case_id FROM opened o LEFT JOIN closed c USING (case_id)
  WHERE CASE WHEN o.category IN ('special_circumstances', 'child_labour') THEN c.year IS NULL OR c.year >= {year}
             ELSE o.year = {year} END),
supported AS (
  SELECT DISTINCT doc->'body'->>'case_id' AS case_id FROM events WHERE kind = 'case.support_recorded' AND year = {year}),
cases AS (
  SELECT ward, category, count(*) AS counted, count(s.case_id) AS supported
  FROM counted LEFT JOIN supported s USING (case_id) GROUP BY ward, category)
SELECT 'town' AS scope, code, sum(num) AS numerator, sum(den) AS denominator FROM obs GROUP BY code
UNION ALL SELECT 'ward', code, num, den FROM obs WHERE ward = '{ward}'
UNION ALL SELECT 'town', 'cases/' || category, sum(counted), sum(supported) FROM cases GROUP BY category
UNION ALL SELECT 'ward', 'cases/' || category, counted, supported FROM cases WHERE ward = '{ward}'
UNION ALL SELECT 'town', 'population', sum((figures->>'children_under_16')::bigint), NULL FROM pop
UNION ALL SELECT 'ward', 'population', (figures->>'children_under_16')::bigint, NULL FROM pop WHERE ward = '{ward}';
"
    )
}

/// One `INSERT` of `rows` events (the representative envelope `doc`).
fn insert_sql(rows: usize, doc: &str) -> String {
    let doc = doc.replace('\'', "''");
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(gen_random_uuid(), '2532' || :w, :n + {i}, 'indicator.observed', {CURRENT_YEAR}, now(), '{doc}'::jsonb)"))
        .collect();
    format!(
        "\\set n random(1, 1000000000)\n\\set w random(0, 6)\nINSERT INTO events_insert (event_id, ward, seq, kind, year, recorded_at, doc) VALUES {};\n",
        values.join(",\n")
    )
}

/// A private PostgreSQL cluster, stopped on drop.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    running: bool,
}

const PORT: &str = "5432";

impl Cluster {
    /// `initdb` and `pg_ctl start` in `dir` (created).
    pub async fn start(dir: &Path) -> anyhow::Result<Cluster> {
        let bin = find_bin()?;
        std::fs::create_dir_all(dir)?;
        let as_postgres = is_root();
        if as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).with_context(|| format!("chown {} to postgres", dir.display()))?;
            // The run directory must be traversable by the postgres user.
            for ancestor in dir.ancestors().skip(1) {
                use std::os::unix::fs::PermissionsExt as _;
                let Ok(meta) = std::fs::metadata(ancestor) else { break };
                if meta.permissions().mode() & 0o001 == 0 {
                    let mode = meta.permissions().mode() | 0o011;
                    std::fs::set_permissions(ancestor, std::fs::Permissions::from_mode(mode))?;
                }
            }
        }
        let mut cluster = Cluster { bin, dir: dir.to_path_buf(), as_postgres, running: false };
        let data = dir.join("data");
        cluster
            .server(
                "initdb",
                &["-D", &data.to_string_lossy(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"],
            )
            .await?;
        let opts = format!("-k {} -c listen_addresses='' -p {PORT} -c max_connections=200", dir.display());
        cluster
            .server(
                "pg_ctl",
                &["-D", &data.to_string_lossy(), "-l", &dir.join("server.log").to_string_lossy(), "-w", "-t", "120", "-o", &opts, "start"],
            )
            .await?;
        cluster.running = true;
        cluster.psql("postgres", "CREATE DATABASE bench").await?;
        Ok(cluster)
    }

    /// Runs a server program (as `postgres` when we are root).
    async fn server(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.args(args).current_dir(&self.dir);
        output(cmd, program).await
    }

    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(["-h", &self.dir.to_string_lossy(), "-p", PORT, "-U", "postgres"]);
        cmd
    }

    /// Runs SQL with `psql` in `db`; returns its output.
    pub async fn psql(&self, db: &str, sql: &str) -> anyhow::Result<String> {
        let mut cmd = self.client("psql");
        cmd.args(["-d", db, "-v", "ON_ERROR_STOP=1", "-q", "-A", "-t", "-c", sql]);
        output(cmd, "psql").await
    }

    /// Runs `script` with `pgbench` for `secs` from `clients` clients; returns its output.
    pub async fn pgbench(&self, script: &Path, clients: usize, secs: u64, log_dir: Option<&Path>) -> anyhow::Result<String> {
        let mut cmd = self.client("pgbench");
        let (c, j) = (clients.to_string(), clients.min(2).to_string());
        cmd.args(["-n", "-f", &script.to_string_lossy(), "-c", &c, "-j", &j, "-T", &secs.to_string()]);
        if let Some(dir) = log_dir {
            cmd.args(["-l", "--log-prefix", &dir.join("txn").to_string_lossy()]).current_dir(dir);
        }
        cmd.arg("bench");
        output(cmd, "pgbench").await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.running = false;
        let data = self.dir.join("data");
        self.server("pg_ctl", &["-D", &data.to_string_lossy(), "-m", "fast", "-w", "stop"]).await.map(drop)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.join("data");
            let pg_ctl = self.bin.join("pg_ctl");
            let mut cmd = if self.as_postgres {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
                c
            } else {
                std::process::Command::new(&pg_ctl)
            };
            let _ = cmd.args(["-D", &data.to_string_lossy(), "-m", "immediate", "-w", "stop"]).output();
        }
    }
}

async fn output(mut cmd: Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().await.with_context(|| format!("run {what}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{what} failed ({}): {}{}", out.status, text, String::from_utf8_lossy(&out.stderr));
    }
    Ok(text)
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn postgres_ids() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .context("no postgres user: install PostgreSQL from Debian (apt-get install -y postgresql; scripts/bench.sh does it)")?;
    let f: Vec<&str> = line.split(':').collect();
    Ok((f[2].parse()?, f[3].parse()?))
}

fn find_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("TREEM_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_string_lossy().parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = std::process::Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    bail!("PostgreSQL is not installed: apt-get install -y postgresql (scripts/bench.sh does it), or set TREEM_PG_BIN to its bin directory")
}

/// `tps = 1234.5 (without initial connection time)` → 1234.5.
fn tps(output: &str) -> anyhow::Result<f64> {
    let line = output.lines().find(|l| l.starts_with("tps = ")).with_context(|| format!("pgbench printed no tps: {output}"))?;
    Ok(line["tps = ".len()..].split_whitespace().next().context("tps value")?.parse()?)
}

/// Latencies from pgbench's per-transaction logs in `dir` (third field, µs).
fn logged_latencies(dir: &Path) -> anyhow::Result<Latencies> {
    let mut l = Latencies::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("txn.")) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                l.push(Duration::from_micros(us));
            }
        }
    }
    Ok(l)
}

/// Runs the PostgreSQL stages: inserts for `secs` each, the load of
/// `load` (`lines` events) and the overview query for `secs` from `clients`.
pub async fn run(scratch: &Scratch, load: &Path, lines: u64, doc: &str, secs: u64, clients: usize) -> anyhow::Result<PgFigures> {
    let cluster = Cluster::start(&scratch.path("postgres")).await?;
    let result = stages(&cluster, scratch, load, lines, doc, secs, clients).await;
    cluster.stop().await?;
    result
}

async fn stages(
    cluster: &Cluster,
    scratch: &Scratch,
    load: &Path,
    lines: u64,
    doc: &str,
    secs: u64,
    clients: usize,
) -> anyhow::Result<PgFigures> {
    let version = cluster.psql("bench", "SHOW server_version").await?;
    let version = version.split_whitespace().next().unwrap_or("?").to_string();
    let mut f = PgFigures { version, ..Default::default() };
    cluster.psql("bench", SCHEMA).await?;
    let scripts = scratch.dir("postgres-scripts")?;
    let one = scripts.join("insert-1.sql");
    std::fs::write(&one, insert_sql(1, doc))?;
    let hundred = scripts.join("insert-100.sql");
    std::fs::write(&hundred, insert_sql(100, doc))?;
    f.insert_1 = tps(&cluster.pgbench(&one, 1, secs, None).await?)?;
    eprintln!("  PostgreSQL {}: insert 1/txn, 1 client: {:.0}/s", f.version, f.insert_1);
    f.insert_16 = tps(&cluster.pgbench(&one, 16, secs, None).await?)?;
    eprintln!("  insert 1/txn, 16 clients: {:.0}/s", f.insert_16);
    f.insert_batch = 100.0 * tps(&cluster.pgbench(&hundred, 1, secs, None).await?)?;
    eprintln!("  insert 100/txn, 1 client: {:.0}/s", f.insert_batch);

    let started = Instant::now();
    cluster.psql("bench", &format!("\\copy load (doc) FROM '{}'", load.display())).await?;
    cluster
        .psql(
            "bench",
            "INSERT INTO events (event_id, ward, seq, kind, year, recorded_at, doc)
             SELECT (doc->>'id')::uuid, doc->>'ward', (doc->>'seq')::bigint, doc->>'kind', (doc->'body'->>'year')::smallint,
                    (doc->>'recorded_at')::timestamptz, doc FROM load;
             TRUNCATE load; ANALYZE events;",
        )
        .await?;
    f.loaded = cluster.psql("bench", "SELECT count(*) FROM events").await?.trim().parse()?;
    if f.loaded != lines {
        bail!("PostgreSQL holds {} events, the load file {lines}", f.loaded);
    }
    f.load_rate = rate(lines, started.elapsed());
    eprintln!("  loaded the {lines} events of the catch-up stage: {:.0}/s", f.load_rate);

    let query = scripts.join("overview.sql");
    std::fs::write(&query, overview_sql(CURRENT_YEAR, OVERVIEW_WARD))?;
    cluster.psql("bench", &overview_sql(CURRENT_YEAR, OVERVIEW_WARD)).await.context("the overview query")?;
    let logs = scratch.dir("postgres-query-logs")?;
    let out = cluster.pgbench(&query, clients, secs, Some(&logs)).await?;
    f.query_per_sec = tps(&out)?;
    f.query = logged_latencies(&logs)?;
    let (p50, p99) = f.query.p50_p99();
    eprintln!("  overview query, {clients} clients: p50 {p50:.1} ms, p99 {p99:.1} ms, {:.1}/s", f.query_per_sec);
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_tps() {
        let out = "latency average = 0.5 ms\ninitial connection time = 2.1 ms\ntps = 1958.366711 (without initial connection time)\n";
        assert!((tps(out).unwrap() - 1958.366711).abs() < 1e-9);
    }

    #[test]
    fn insert_scripts_hold_the_rows_asked_for() {
        let s = insert_sql(3, r#"{"a":"it's"}"#);
        assert_eq!(s.matches("gen_random_uuid()").count(), 3);
        assert!(s.contains("it''s"));
    }
}
