fn main() -> std::process::ExitCode {
    rondo::tools::main()
}
