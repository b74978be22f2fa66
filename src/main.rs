fn main() -> std::process::ExitCode {
    #[cfg(feature = "wip-integration")]
    return rondo::tools::main();
    #[cfg(not(feature = "wip-integration"))]
    std::process::ExitCode::FAILURE
}
