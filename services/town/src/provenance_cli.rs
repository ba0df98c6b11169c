//! `treem-town keys add|list|remove`: the town's registry of ward public
//! keys (`ward_keys_file`, see `treem_town::provenance`). Works on the file
//! whether or not the town runs; a running town uses a change from its next
//! batch on. Concurrent commands take turns on an advisory lock beside the
//! file, and each change replaces the file atomically.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use treem_proto::provenance::{KeyRegistration, RegisteredKey};
use treem_town::Config;
use treem_town::provenance::{KeysFile, read_keys_file, rings, write_keys_file};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Register wards' public keys: the JSON lines `treem-ward keys show
    /// --public` prints at the ward, from FILE or standard input.
    Add {
        /// A file of such lines; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// Replace a key registered for the same ward and first seq (a ward
        /// key replaced before it signed anything).
        #[arg(long)]
        replace: bool,
    },
    /// List the registered keys, ward by ward, with the seqs each signs.
    List,
    /// Remove a ward's key (revocation): every event it signs is refused
    /// from now on, including ones that have not arrived yet.
    Remove {
        #[arg(long)]
        ward: String,
        #[arg(long)]
        key_id: String,
    },
}

/// Takes the advisory lock of `path`, held while the returned file lives.
fn lock(path: &Path) -> anyhow::Result<std::fs::File> {
    let lock_path = path.with_extension("json.lock");
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
    fs2::FileExt::lock_exclusive(&file).with_context(|| format!("locking {}", lock_path.display()))?;
    Ok(file)
}

pub fn run(config: &Config, command: KeysCommand, stdin: &mut dyn BufRead, out: &mut dyn Write) -> anyhow::Result<()> {
    let path = config.ward_keys_path();
    let hierarchy = config.hierarchy()?;
    let town = hierarchy.town(&config.province, &config.town)?;
    match command {
        KeysCommand::Add { file, replace } => {
            let text = match file.filter(|f| f.as_os_str() != "-") {
                Some(f) => std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
                None => {
                    let mut text = String::new();
                    stdin.read_to_string(&mut text).context("reading standard input")?;
                    text
                }
            };
            let mut regs = Vec::new();
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let reg: KeyRegistration = serde_json::from_str(line.trim())
                    .with_context(|| format!("line {} is not a key as `treem-ward keys show --public` prints it: {line:?}", i + 1))?;
                if (reg.province.as_str(), reg.town.as_str()) != (config.province.as_str(), config.town.as_str()) {
                    bail!(
                        "line {}: the key of ward {} belongs to town {}/{}, this is town {}/{}",
                        i + 1,
                        reg.ward,
                        reg.province,
                        reg.town,
                        config.province,
                        config.town
                    );
                }
                if !town.wards.iter().any(|w| w.code == reg.ward) {
                    bail!("line {}: ward {} is not a ward of town {} in the hierarchy", i + 1, reg.ward, config.town);
                }
                regs.push(reg);
            }
            if regs.is_empty() {
                bail!("no key given; pipe in the output of `treem-ward keys show --public`");
            }
            let _lock = lock(&path)?;
            let mut file = read_keys_file(&path)?;
            for reg in &regs {
                let note = add(&mut file, reg, replace)?;
                writeln!(out, "ward {}: key {} (signs from seq {}): {note}", reg.ward, reg.key_id, reg.valid_from_seq)?;
            }
            rings(&path, &file)?;
            write_keys_file(&path, &file)?;
            writeln!(out, "saved {}; a running town uses it from its next batch", path.display())?;
            writeln!(out, "events parked for want of these keys apply once replayed: treem-town parked replay --all")?;
        }
        KeysCommand::List => {
            let file = read_keys_file(&path)?;
            let rings = rings(&path, &file)?;
            writeln!(out, "ward keys in {} (require_signatures = {})", path.display(), config.require_signatures)?;
            for w in &town.wards {
                match rings.get(&w.code).filter(|r| !r.is_empty()) {
                    None => {
                        writeln!(out, "{} {} {}: no key (its events are refused while require_signatures is on)", w.code, w.kind, w.name)?
                    }
                    Some(ring) => {
                        writeln!(out, "{} {} {}:", w.code, w.kind, w.name)?;
                        for k in ring.keys() {
                            let (from, until) = ring.range(&k.key_id).expect("a key of the ring");
                            let until = until.map_or_else(|| "on".to_owned(), |u| format!("–{u}"));
                            writeln!(out, "  {}  seqs {from}{until}  {}", k.key_id, k.public_key)?;
                        }
                    }
                }
            }
        }
        KeysCommand::Remove { ward, key_id } => {
            let _lock = lock(&path)?;
            let mut file = read_keys_file(&path)?;
            let keys = file.get_mut(&ward).with_context(|| format!("ward {ward} has no registered key in {}", path.display()))?;
            let before = keys.len();
            keys.retain(|k| k.key_id != key_id);
            if keys.len() == before {
                bail!("ward {ward} has no key {key_id}; see `treem-town keys list`");
            }
            if keys.is_empty() {
                file.remove(&ward);
            }
            rings(&path, &file)?;
            write_keys_file(&path, &file)?;
            writeln!(out, "removed key {key_id} of ward {ward}: every event it signs is refused from now on (events applied before stay)")?;
        }
    }
    Ok(())
}

/// Adds `reg` to `file`; says what it did.
fn add(file: &mut KeysFile, reg: &KeyRegistration, replace: bool) -> anyhow::Result<&'static str> {
    let keys = file.entry(reg.ward.clone()).or_default();
    let key: RegisteredKey = reg.key();
    if keys.contains(&key) {
        return Ok("already registered");
    }
    if let Some(same_id) = keys.iter().find(|k| k.key_id == key.key_id) {
        bail!(
            "ward {}: key {} is already registered from seq {}, not {}; remove it first (`treem-town keys remove`)",
            reg.ward,
            key.key_id,
            same_id.valid_from_seq,
            key.valid_from_seq
        );
    }
    if let Some(i) = keys.iter().position(|k| k.valid_from_seq == key.valid_from_seq) {
        if !replace {
            bail!(
                "ward {}: key {} already signs from seq {}; if the ward replaced that key before it signed anything, add --replace",
                reg.ward,
                keys[i].key_id,
                key.valid_from_seq
            );
        }
        keys.remove(i);
        keys.push(key);
        return Ok("registered, replacing the key that started at the same seq");
    }
    keys.push(key);
    keys.sort_by_key(|k| k.valid_from_seq);
    Ok("registered")
}
