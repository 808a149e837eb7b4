fn main() -> std::process::ExitCode {
    stripe_manager::cli::main()
}
