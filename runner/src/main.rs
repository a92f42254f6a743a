//! The `weir` binary: parses the command line and dispatches to the library.

mod cli;
mod generate;
mod nexmark_gen;
mod observe;
mod scaffold;
mod tap_table;
mod topic_io;
mod user_log_gen;

use clap::Parser;
use cli::{Cli, Command, GraphFormat, PipelineArgs};
use std::path::Path;
use std::process::ExitCode;
use weir::config::{Diagnostics, Edit, load_document};
use weir::kafka::broker_users::BrokerUser;
use weir::kafka::embedded::{BrokerTls, EmbeddedOptions};
use weir::registry::Registry;
use weir::stage::StageKind;
use weir::stage::{ShutdownTrigger, shutdown_pair};
use weir::topology::{self, Plan, graph};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    install_panic_hook();
    let registry = weir::builtins::registry();
    match cli.command {
        Command::List => {
            print!("{}", list(&registry));
            ExitCode::SUCCESS
        }
        Command::Validate(args) => validate(&args, &registry),
        Command::Graph { pipeline, format } => draw_graph(&pipeline, format, &registry),
        Command::Gen(what) => generate::generate(what),
        Command::Plugin(cli::PluginCommand::New { name, kind, dir }) => {
            scaffold::new_plugin(&name, kind, dir)
        }
        Command::Plugin(cli::PluginCommand::Test { dir }) => {
            scaffold::test_plugin(&dir, |pipelines| test_pipelines(pipelines, &registry))
        }
        Command::Plugins { paths } => describe_plugins(paths),
        Command::Broker {
            listen,
            storage,
            advertise,
            users,
            tls_cert,
            tls_key,
            tls_ca,
        } => match broker_users(&users) {
            Some(users) => broker(EmbeddedOptions {
                listen,
                storage,
                advertise,
                users,
                tls: tls_cert.zip(tls_key).map(|(cert, key)| BrokerTls {
                    cert,
                    key,
                    ca: tls_ca,
                }),
            }),
            None => ExitCode::FAILURE,
        },
        Command::Schema { pipeline } => print_schema(&registry, pipeline.as_deref()),
        Command::Test { paths } => test_pipelines(&paths, &registry),
        Command::Run {
            pipeline,
            watch,
            reset,
            api,
            api_tls_cert,
            api_tls_key,
        } => match checked_plan(&pipeline, &registry) {
            Some(mut plan) => run(
                {
                    plan.start_over = reset;
                    plan
                },
                Reloading {
                    pipeline,
                    watch,
                    registry,
                },
                api.map(|listen| observe::ApiSettings {
                    listen,
                    tls: api_tls_cert
                        .zip(api_tls_key)
                        .map(|(cert, key)| weir::serve::tls::ServerTls { cert, key }),
                }),
            ),
            None => ExitCode::FAILURE,
        },
        Command::Consume {
            topic,
            brokers,
            from_beginning,
            isolation,
            format,
            count,
            to_end,
        } => topic_io::consume(topic_io::Consume {
            topic,
            brokers: topic_io::brokers(brokers),
            from_beginning,
            committed_only: isolation == cli::Isolation::Committed,
            format,
            count,
            to_end,
        }),
        Command::Produce {
            topic,
            brokers,
            key_separator,
            create,
        } => topic_io::produce(
            &topic,
            &topic_io::brokers(brokers),
            key_separator.as_deref(),
            create,
        ),
        Command::Top { api, count } => match runtime() {
            Some(runtime) => runtime.block_on(observe::top(&api, count)),
            None => ExitCode::FAILURE,
        },
        Command::Tap {
            stages,
            api,
            limit,
            sample,
            format,
        } => match runtime() {
            Some(runtime) => runtime.block_on(observe::tap(&api, &stages, limit, sample, format)),
            None => ExitCode::FAILURE,
        },
    }
}

/// Success or failure as an exit code.
fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `weir validate`: every problem of the file, or "ok".
fn validate(args: &PipelineArgs, registry: &Registry) -> ExitCode {
    let valid = checked_plan(args, registry).is_some();
    if valid {
        println!("{}: ok", args.file.display());
    }
    exit_code(valid)
}

/// `weir graph`: the checked plan as DOT or text.
fn draw_graph(pipeline: &PipelineArgs, format: GraphFormat, registry: &Registry) -> ExitCode {
    let Some(plan) = checked_plan(pipeline, registry) else {
        return ExitCode::FAILURE;
    };
    let text = match format {
        GraphFormat::Dot => graph::to_dot(&plan),
        GraphFormat::Text => graph::to_text(&plan),
    };
    print!("{text}");
    ExitCode::SUCCESS
}

/// `weir plugins`: what the named libraries (or those on `WEIR_PLUGIN_PATH`) offer.
fn describe_plugins(paths: Vec<std::path::PathBuf>) -> ExitCode {
    let paths = if paths.is_empty() {
        std::env::var_os("WEIR_PLUGIN_PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default()
    } else {
        paths
    };
    if paths.is_empty() {
        eprintln!("error: name plugin files or directories, or set WEIR_PLUGIN_PATH");
        return ExitCode::FAILURE;
    }
    let (text, ok) = weir::plugins::describe(&paths);
    print!("{text}");
    exit_code(ok)
}

/// `weir broker --user NAME:FILE`s; `None` (after saying why) when one is malformed.
fn broker_users(users: &[String]) -> Option<Vec<BrokerUser>> {
    let mut parsed = Vec::with_capacity(users.len());
    for user in users {
        match user.split_once(':') {
            Some((name, file)) if !file.is_empty() => {
                parsed.push(BrokerUser::from_file(name, file))
            }
            _ => {
                eprintln!("error: --user {user}: expected NAME:FILE (FILE holds the password)");
                return None;
            }
        }
    }
    Some(parsed)
}

/// `weir schema`: the JSON Schema of pipeline files.
fn print_schema(registry: &Registry, pipeline: Option<&Path>) -> ExitCode {
    let mut registry = registry.clone();
    if let Some(file) = pipeline {
        // The pipeline's plugins, loaded as a run would; the rest of the file is not checked.
        let diagnostics = match load_document(file, &[]) {
            Ok(doc) => Diagnostics(weir::plugins::register(&doc, &mut registry)),
            Err(diagnostics) => diagnostics,
        };
        print_diagnostics(&diagnostics);
        if diagnostics.has_errors() {
            return ExitCode::FAILURE;
        }
    }
    let schema = weir::schema::pipeline_schema(&registry);
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `weir test`: the pipelines' tests, and a summary line.
fn test_pipelines(paths: &[std::path::PathBuf], registry: &Registry) -> ExitCode {
    let started = std::time::Instant::now();
    let mut out = String::new();
    let summary = weir::pipeline_test::run(paths, registry, &mut out);
    print!("{out}");
    println!(
        "{} passed, {} failed, {} pipeline(s) without tests ({:.0?})",
        summary.passed,
        summary.failed,
        summary.untested.len(),
        started.elapsed()
    );
    exit_code(summary.failed == 0)
}

/// Environment variable that points every Kafka stage at another cluster (as
/// `--set kafka.brokers=...` does; an explicit `--set` wins).
const BROKERS_ENV: &str = "WEIR_KAFKA_BROKERS";

/// Loads and checks a pipeline, printing every diagnostic. `None` when there are errors.
fn checked_plan(args: &PipelineArgs, registry: &Registry) -> Option<Plan> {
    let overrides: Vec<Edit> = std::env::var(BROKERS_ENV)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .map(|b| Edit::Set(format!("kafka.brokers={:?}", b.trim())))
        .into_iter()
        .chain(args.unset.iter().cloned().map(Edit::Unset))
        .chain(args.set.iter().cloned().map(Edit::Set))
        .collect();
    let (plan, diagnostics) = match load_document(&args.file, &overrides) {
        Ok(doc) => topology::plan(&doc, registry),
        Err(diagnostics) => (None, diagnostics),
    };
    print_diagnostics(&diagnostics);
    plan
}

fn print_diagnostics(diagnostics: &Diagnostics) {
    if diagnostics.0.is_empty() {
        return;
    }
    eprint!("{diagnostics}");
    let errors = diagnostics.error_count();
    if errors > 0 {
        eprintln!("{errors} error{} found", if errors == 1 { "" } else { "s" });
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// `weir broker`: the embedded broker alone, until a signal.
fn broker(options: EmbeddedOptions) -> ExitCode {
    let issues = options.check();
    for issue in &issues {
        eprintln!("error: {}: {}", issue.key, issue.message);
    }
    if !issues.is_empty() {
        return ExitCode::FAILURE;
    }
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        match weir::kafka::embedded::ensure(&options).await {
            Ok(address) => {
                tracing::info!("Kafka broker ready at {address}; Ctrl-C stops it");
                let (trigger, mut stopped) = shutdown_pair();
                tokio::spawn(stop_on_signals(std::sync::Arc::new(trigger)));
                stopped.requested().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Where a run's edits come from: the file it was started with (and its edits), watched with
/// `--watch`, read again on SIGHUP.
struct Reloading {
    pipeline: PipelineArgs,
    watch: bool,
    registry: Registry,
}

fn run(plan: Plan, reloading: Reloading, api: Option<observe::ApiSettings>) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(async {
        let view = topology::RunView::new();
        // Held until the run ends: dropping it stops the API.
        let _api = match api {
            Some(settings) => match observe::serve_api(&settings, &view) {
                Ok(serving) => Some(serving),
                Err(e) => {
                    eprintln!("error: --api: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let (trigger, _) = shutdown_pair();
        let trigger = std::sync::Arc::new(trigger);
        tokio::spawn(stop_on_signals(std::sync::Arc::clone(&trigger)));
        let (reloads, reload_requests) = tokio::sync::mpsc::channel(1);
        tokio::spawn(reload_on_edits(reloading, reloads));
        let report = topology::run_reloadable(plan, &trigger, reload_requests, &view).await;
        weir::kafka::run_over();
        // A run that failed before any record moved has nothing to count: its error says it all.
        let moved = report
            .counts
            .iter()
            .any(|c| c.received + c.emitted + c.dropped > 0);
        let counts = if moved || report.failures.is_empty() {
            &report.counts[..]
        } else {
            &[]
        };
        for c in counts {
            let dropped = if c.dropped > 0 {
                format!(", {} dropped", c.dropped)
            } else {
                String::new()
            };
            let flow = match c.kind {
                StageKind::Source => format!("{} out", c.emitted),
                StageKind::Transform => format!("{} in, {} out", c.received, c.emitted),
                StageKind::Sink => format!("{} in", c.received),
            };
            let bytes = match c.kind {
                StageKind::Source if c.bytes_read > 0 => format!(", {} bytes read", c.bytes_read),
                StageKind::Sink if c.bytes_written > 0 => {
                    format!(", {} bytes written", c.bytes_written)
                }
                _ => String::new(),
            };
            tracing::info!("{}: {flow}{dropped}{bytes}", c.path);
        }
        for warning in report.counts.iter().filter_map(|c| c.heavy_drops()) {
            tracing::warn!("{warning}");
        }
        if let Some(kib) = peak_rss_kib() {
            tracing::info!("peak memory (RSS): {:.1} MB", kib as f64 / 1024.0);
        }
        if report.failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            for f in &report.failures {
                eprintln!("error: {f}");
            }
            ExitCode::FAILURE
        }
    })
}

/// First Ctrl-C or SIGTERM: stop the sources and let everything drain. Second: exit at once.
async fn stop_on_signals(trigger: std::sync::Arc<ShutdownTrigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will end the process abruptly");
        return;
    };
    for round in 0.. {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if round == 0 {
            tracing::info!(
                "stopping: sources stop, stages drain, sinks flush (signal again to exit at once)"
            );
            trigger.trigger();
        } else {
            eprintln!("exiting without draining");
            std::process::exit(130);
        }
    }
}

/// Reads the pipeline file again on SIGHUP, and with `--watch` whenever it changes; a file with
/// errors is reported and left, a good one is handed to the running pipeline, which says what it
/// applied.
async fn reload_on_edits(
    reloading: Reloading,
    reloads: tokio::sync::mpsc::Sender<topology::reload::Reload>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install a SIGHUP handler; edits are not applied while running");
        return;
    };
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut seen = stamp(&reloading.pipeline.file);
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = hangup.recv() => {}
            _ = poll.tick(), if reloading.watch => {
                let now = stamp(&reloading.pipeline.file);
                if now == seen || now.is_none() {
                    continue;
                }
                seen = now;
            }
        }
        let started = std::time::Instant::now();
        tracing::info!(
            "{}: reading the edited file",
            reloading.pipeline.file.display()
        );
        let Some(plan) = checked_plan(&reloading.pipeline, &reloading.registry) else {
            tracing::warn!("the edit has errors (above); the pipeline keeps running as it was");
            continue;
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        if reloads
            .send(topology::reload::Reload { plan, reply })
            .await
            .is_err()
        {
            return;
        }
        match answer.await {
            Ok(Ok(applied)) => tracing::info!("reloaded in {:.0?}: {applied}", started.elapsed()),
            Ok(Err(why)) => tracing::warn!("edit not applied: {why}"),
            Err(_) => return,
        }
    }
}

/// The process's peak resident set size (VmHWM), where the OS reports it (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn list(registry: &Registry) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut kind = None;
    for factory in registry.all() {
        if kind != Some(factory.kind()) {
            kind = Some(factory.kind());
            let _ = writeln!(
                out,
                "{}{}:",
                if out.is_empty() { "" } else { "\n" },
                factory.kind().section()
            );
        }
        let _ = writeln!(out, "  {:<10} {}", factory.type_name(), factory.summary());
        for option in factory.options() {
            let _ = writeln!(
                out,
                "      {:<16} {:<24} default {:<10} {}",
                option.name, option.ty, option.default, option.doc
            );
        }
    }
    out
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    // weir's own messages at `level`; libraries (the embedded broker is chatty) only warnings,
    // or everything at -vv.
    let others = if cli.verbose >= 2 { "trace" } else { "warn" };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{others},weir={level}")));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(weir::progress::StderrAroundBars)
        .with_target(false);
    match cli.log_format {
        cli::LogFormat::Text => log.with_ansi(weir::progress::stderr_is_terminal()).init(),
        cli::LogFormat::Json => log.json().with_ansi(false).init(),
    }
}

/// Panics inside stages are caught by the engine and reported as that stage's failure; the hook
/// only adds where it happened to the log.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        tracing::debug!(
            "panic{location}: {}",
            info.payload_as_str().unwrap_or("(no message)")
        );
    }));
}
