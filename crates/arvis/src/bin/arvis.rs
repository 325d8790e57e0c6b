//! The `arvis` command line; see `arvis --help` and [`arvis::cli`].

fn main() -> std::process::ExitCode {
    arvis::cli::run(std::env::args_os())
}
