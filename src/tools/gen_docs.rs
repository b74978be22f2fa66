//! `rondo gen-docs --out DIR` (hidden): man pages and shell completions made from the same
//! clap definition that parses the command line, so they never drift from `--help`. The
//! Debian package (`packaging/build-deb`) runs it on the binary it ships.
//!
//! Writes `DIR/man/rondo.1` and one page per subcommand (`rondo-run.1`,
//! `rondo-fleet-status.1`, ...), and `DIR/completions/{rondo.bash, _rondo, rondo.fish}`.
//! Hidden commands (this one) are in neither.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args, Debug)]
pub struct GenDocsArgs {
    /// Folder to write man/ and completions/ into (made if missing).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: &GenDocsArgs) -> Result<(), String> {
    let (pages, completions) = generate(&a.out)?;
    println!(
        "wrote {pages} man pages to {} and {completions} completion scripts to {}",
        a.out.join("man").display(),
        a.out.join("completions").display()
    );
    Ok(())
}

/// Write every man page and completion script under `out`; how many of each.
pub fn generate(out: &Path) -> Result<(usize, usize), String> {
    let man_dir = out.join("man");
    let comp_dir = out.join("completions");
    for d in [&man_dir, &comp_dir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    // Built, every subcommand has its display name (`rondo-fleet-status`): the page names.
    cmd.build();
    let source = format!("rondo {}", env!("CARGO_PKG_VERSION"));
    let mut pages = 0;
    let mut stack = vec![cmd.clone()];
    while let Some(c) = stack.pop() {
        stack.extend(c.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        let man = clap_mangen::Man::new(c)
            .source(source.clone())
            .manual("Rondo Manual");
        man.generate_to(&man_dir)
            .map_err(|e| format!("{}: {e}", man_dir.display()))?;
        pages += 1;
    }
    // clap_complete offers hidden subcommands too: complete a copy without them.
    // (`cmd` is built: its --help and --version are among its arguments already.)
    let mut visible = clap::Command::new("rondo")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cmd.get_about() {
        visible = visible.about(about.clone());
    }
    let mut completions = 0;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut visible, "rondo", &comp_dir)
            .map_err(|e| format!("{}: {e}", comp_dir.display()))?;
        completions += 1;
    }
    Ok((pages, completions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_subcommand_has_a_page_and_completions_know_them() {
        let dir = tempfile::tempdir().unwrap();
        let (pages, completions) = generate(dir.path()).unwrap();
        assert_eq!(completions, 3);
        let man = dir.path().join("man");
        for page in [
            "rondo.1",
            "rondo-run.1",
            "rondo-table-build.1",
            "rondo-console.1",
        ] {
            let text = std::fs::read_to_string(man.join(page)).unwrap();
            assert!(
                text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH"),
                "{page}"
            );
        }
        // The hidden generator documents nobody, itself included.
        assert!(!man.join("rondo-gen-docs.1").exists());
        assert_eq!(std::fs::read_dir(&man).unwrap().count(), pages);
        let run = std::fs::read_to_string(man.join("rondo-run.1")).unwrap();
        assert!(run.contains("console\\-socket"), "{run}");
        let bash = std::fs::read_to_string(dir.path().join("completions/rondo.bash")).unwrap();
        assert!(bash.contains("check-config") && !bash.contains("gen-docs"));
        for f in ["_rondo", "rondo.fish"] {
            assert!(dir.path().join("completions").join(f).exists(), "{f}");
        }
    }
}
