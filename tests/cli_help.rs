//! Help: `mmlog --help` lists every subcommand with examples and the exit codes; each
//! subcommand's `--help` has an example and documents its JSON shape, and `-h` keeps
//! the example; usage errors exit 2 and touch nothing. Provoked by running the built
//! binary with help flags and with bad command lines, in each test's own temporary
//! directory (so that relative paths land there).
mod cli_support;
mod common;

use cli_support::*;

const SUBCOMMANDS: &[&str] = &["bench", "stat", "verify", "dump", "checkpoints", "repair"];

#[test]
fn every_help_has_an_example_and_every_long_help_a_json_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = mmlog("--help").run_in(tmp.path());
    run.expect_code(0, "mmlog --help").expect_stdout(
        &["Examples:", "Exit status", "mmlog verify"],
        "mmlog --help",
    );
    for sub in SUBCOMMANDS {
        assert!(
            run.stdout.contains(&format!("  {sub} ")),
            "--help lists {sub}"
        );
        let long = mmlog(sub).arg("--help").run_in(tmp.path());
        long.expect_code(0, sub).expect_stdout(
            &[
                "Example",
                &format!("mmlog {sub}"),
                "JSON (--json)",
                "--json",
            ],
            sub,
        );
        let short = mmlog(sub).arg("-h").run_in(tmp.path());
        short
            .expect_code(0, sub)
            .expect_stdout(&["Example:", &format!("mmlog {sub}")], sub);
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}

#[test]
fn usage_errors_exit_2_and_touch_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for args in [
        &["verify"][..],
        &["frobnicate"],
        &["verify", "--mode", "lenient", "log"],
        &["repair", "--mode", "skip", "log"],
        &["dump", "log", "--hex", "--json"],
    ] {
        let run = mmlog(args[0]).args(&args[1..]).run_in(tmp.path());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
}
