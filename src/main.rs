//! The `conform` command line.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use conform::ab::{self, client::Endpoint};
use conform::chat_format::ChatFormat;
use conform::engine::{Engine, EngineConfig, Event, Job, SamplingParams};
use conform::format::Limits;
use conform::server::connections::{self, ConnectionLimits};
use conform::server::request::RequestLimits;
use conform::{manifest, server};

#[derive(Parser)]
#[command(name = "conform", version, about = "OpenAI-compatible LLM server with guaranteed output formats")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible HTTP API.
    Serve(ServeArgs),
    /// Generate one completion for a raw prompt and print it (no server).
    Generate {
        #[command(flatten)]
        engine: EngineArgs,
        prompt: String,
        #[arg(long, default_value_t = 64)]
        max_tokens: u32,
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
    },
    /// Distil the lookahead TPM (a byte HMM) from the model's own answers to task-only prompts.
    Distill(DistillArgs),
    /// A/B decoding arms (free, mask, lookahead) on a task suite; writes report.json and report.html.
    Ab(AbArgs),
}

#[derive(Args)]
struct DistillArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Where to write the TPM (default: next to the model, `.tpm` instead of `.gguf`, which
    /// `serve` loads).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// The shared data directory (GSM8K train, IFEval, BFCL prompts).
    #[arg(long, default_value = "../shared/data")]
    data: std::path::PathBuf,
    /// Answers to sample.
    #[arg(long, default_value_t = 400)]
    samples: usize,
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Hidden states of the HMM.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// EM iterations (about 1 s each on 2 cores for the default sample).
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue EM from the TPM already at --out (samples always continue where they stopped).
    #[arg(long)]
    resume: bool,
}

#[derive(Args)]
struct AbArgs {
    /// Without --server, the engine of our own server, started in-process on a loopback port.
    /// With --server, only --model counts: the model name sent (default: the first listed).
    #[command(flatten)]
    engine: EngineArgs,
    #[arg(long, value_enum)]
    suite: ab::suite::Suite,
    /// The suite's JSONL file.
    #[arg(long)]
    data: std::path::PathBuf,
    /// Decoding arms, each `free`, `mask`, `lookahead`, `lookahead-uniform` or `decoupled`,
    /// optionally with its own prompt (`free:task,mask:format,decoupled:task`).
    #[arg(long, value_parser = ab::Arm::parse, value_delimiter = ',', default_value = "free,mask")]
    arms: Vec<ab::Arm>,
    /// `task`: the task alone; `format`: the task plus instructions about the format.
    #[arg(long, value_enum, default_value = "format")]
    prompt: ab::suite::Prompt,
    /// Only the first N tasks.
    #[arg(long)]
    limit: Option<usize>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// JSON sent as `format_options` with the mask arm (conform's extension), e.g.
    /// '{"unknown_keywords":"ignore"}'.
    #[arg(long, value_parser = parse_json)]
    format_options: Option<serde_json::Value>,
    /// `tool_choice` for the constrained arms of a tools suite (default: "required" where the
    /// gold has calls, else "auto").
    #[arg(long, value_parser = ["auto", "required"])]
    tool_choice: Option<String>,
    /// An OpenAI-compatible server to A/B instead of our own (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    server: Option<String>,
    /// Bearer key for --server.
    #[arg(long)]
    api_key: Option<String>,
    /// Where report.json and report.html go.
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(Args)]
struct EngineArgs {
    /// A model name from models/manifest.json, or a path to a GGUF file.
    #[arg(long, env = "CONFORM_MODEL")]
    model: Option<String>,
    /// Context window of each sequence, in tokens.
    #[arg(long, env = "CONFORM_CTX_SIZE", default_value_t = 4096)]
    ctx_size: u32,
    /// Sequences decoded together (continuous batching).
    #[arg(long, env = "CONFORM_PARALLEL", default_value_t = 8)]
    parallel: u32,
    /// CPU threads for llama.cpp (default: the number of cores).
    #[arg(long, env = "CONFORM_THREADS")]
    threads: Option<i32>,
    /// Most tokens per decode call.
    #[arg(long, env = "CONFORM_BATCH_SIZE", default_value_t = 512)]
    batch_size: u32,
    /// Layers to offload to the GPU (default: all; no effect on a CPU-only build).
    #[arg(long, env = "CONFORM_N_GPU_LAYERS", default_value_t = -1, allow_negative_numbers = true)]
    n_gpu_layers: i32,
    /// The model's TPM for `format_mode: "lookahead"` (default: next to the model, `.tpm`
    /// instead of `.gguf`, when that file exists).
    #[arg(long, env = "CONFORM_TPM")]
    tpm: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    engine: EngineArgs,
    #[arg(long, env = "CONFORM_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "CONFORM_PORT", default_value_t = 8080)]
    port: u16,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CONFORM_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Most requests' sequences waiting for a free slot; more get 429 with Retry-After.
    #[arg(long, env = "CONFORM_MAX_QUEUE", default_value_t = 64)]
    max_queue: usize,
    /// Seconds a request may wait in the queue for a slot; past it, 503 with Retry-After.
    #[arg(long, env = "CONFORM_QUEUE_TIMEOUT", default_value_t = 300)]
    queue_timeout: u64,
    /// Require `Authorization: Bearer KEY` on /v1/* (repeat for several keys; also
    /// CONFORM_API_KEY, comma-separated).
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// On SIGTERM/SIGINT, stop accepting and give in-flight requests this many seconds.
    #[arg(long, env = "CONFORM_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Seconds a connection may take to send a complete request head, counted from when the
    /// server starts waiting for one: on a new connection, and between keep-alive requests (so
    /// also how long an idle connection is kept). Never counts while a request is answered.
    #[arg(long, env = "CONFORM_HEADER_TIMEOUT", default_value_t = 10)]
    header_timeout: u64,
    /// Most connections open at once; past it new ones wait, unaccepted, until one closes.
    /// The default stays well under the common limit of 1024 open files, and far above the
    /// requests the engine takes at once (--parallel running, --max-queue waiting).
    #[arg(long, env = "CONFORM_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: u32,
    /// A Host name to answer besides loopback ones (any port; repeatable, or comma-separated in
    /// CONFORM_ALLOWED_HOSTS). A server bound to loopback, or given any, answers other Hosts
    /// with 403, against DNS rebinding.
    #[arg(long = "allowed-host", env = "CONFORM_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// A Jinja chat template file to use instead of the model's own.
    #[arg(long, env = "CONFORM_CHAT_TEMPLATE_FILE")]
    chat_template_file: Option<std::path::PathBuf>,
    /// How the model writes tool calls and reasoning (default: detected from the chat template).
    #[arg(long, env = "CONFORM_CHAT_FORMAT", value_parser = parse_chat_format)]
    chat_format: Option<ChatFormat>,
    /// Exit when stdin closes (lets a test harness's server die with the harness).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
    /// Most choices (`n`) per request.
    #[arg(long, env = "CONFORM_MAX_N", default_value_t = RequestLimits::default().max_n)]
    max_n: u32,
    /// Most chat messages per request.
    #[arg(long, env = "CONFORM_MAX_MESSAGES", default_value_t = RequestLimits::default().max_messages)]
    max_messages: usize,
    /// Largest `max_tokens` a request may ask for (the context window bounds it too).
    #[arg(long, env = "CONFORM_MAX_COMPLETION_TOKENS", default_value_t = RequestLimits::default().max_completion_tokens)]
    max_completion_tokens: u32,
    #[command(flatten)]
    limits: FormatLimitArgs,
}

/// Bounds on format compilation (`format::Limits`); each breach is a 400 naming the limit.
#[derive(Args)]
struct FormatLimitArgs {
    /// Largest automaton (dense DFA or product table), in bytes.
    #[arg(long, env = "CONFORM_MAX_DFA_BYTES", default_value_t = Limits::default().dfa_size_bytes)]
    max_dfa_bytes: usize,
    /// Most memory while determinising, in bytes.
    #[arg(long, env = "CONFORM_MAX_DETERMINIZE_BYTES", default_value_t = Limits::default().determinize_size_bytes)]
    max_determinize_bytes: usize,
    /// Longest regex, user-given or lowered from a schema or grammar, in bytes.
    #[arg(long, env = "CONFORM_MAX_REGEX_BYTES", default_value_t = Limits::default().max_regex_len)]
    max_regex_bytes: usize,
    /// Deepest JSON Schema nesting walked.
    #[arg(long, env = "CONFORM_MAX_SCHEMA_DEPTH", default_value_t = Limits::default().max_schema_depth)]
    max_schema_depth: u32,
    /// Largest repetition bound unrolled (maxLength, maxItems, ...).
    #[arg(long, env = "CONFORM_MAX_REPETITION", default_value_t = Limits::default().max_repetition)]
    max_repetition: u32,
    /// Levels unrolled where a format cannot use a recursive automaton (the JSON of writing
    /// instructions, grammars with more recursive rules than call codes).
    #[arg(long, env = "CONFORM_RECURSION_DEPTH", default_value_t = Limits::default().recursion_depth)]
    recursion_depth: u32,
    /// Deepest nesting of recursive `$ref`s and grammar rules (recursive automata).
    #[arg(long, env = "CONFORM_MAX_NESTING", default_value_t = Limits::default().max_nesting)]
    max_nesting: u32,
    /// Total regex bytes produced while lowering one schema or grammar.
    #[arg(long, env = "CONFORM_MAX_LOWERING_BYTES", default_value_t = Limits::default().max_lowering_work)]
    max_lowering_bytes: usize,
    /// Automata one product of writing instructions (and the format they constrain) may intersect.
    #[arg(long, env = "CONFORM_MAX_PRODUCT_COMPONENTS", default_value_t = Limits::default().max_product_components)]
    max_product_components: usize,
    /// Words one writing instruction may list (forbidden words, keywords).
    #[arg(long, env = "CONFORM_MAX_LISTED_WORDS", default_value_t = Limits::default().max_listed_words)]
    max_listed_words: usize,
    /// Bytes of token masks cached over all compiled formats (an eighth at most per format).
    #[arg(long, env = "CONFORM_MASK_CACHE_BYTES", default_value_t = Limits::default().mask_cache_bytes)]
    mask_cache_bytes: usize,
}

impl FormatLimitArgs {
    fn limits(&self) -> Limits {
        Limits {
            dfa_size_bytes: self.max_dfa_bytes,
            determinize_size_bytes: self.max_determinize_bytes,
            max_schema_depth: self.max_schema_depth,
            max_repetition: self.max_repetition,
            max_regex_len: self.max_regex_bytes,
            recursion_depth: self.recursion_depth,
            max_nesting: self.max_nesting,
            max_lowering_work: self.max_lowering_bytes,
            max_product_components: self.max_product_components,
            max_listed_words: self.max_listed_words,
            mask_cache_bytes: self.mask_cache_bytes,
        }
    }
}

impl EngineArgs {
    fn start(&self) -> anyhow::Result<Engine> {
        let (id, path) = manifest::resolve(self.model.as_deref())?;
        let threads =
            self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(2));
        anyhow::ensure!(self.parallel >= 1 && self.parallel <= 256, "--parallel must be 1..=256");
        anyhow::ensure!(self.ctx_size >= 16, "--ctx-size must be at least 16");
        anyhow::ensure!(self.batch_size >= self.parallel, "--batch-size must be at least --parallel");
        anyhow::ensure!(self.n_gpu_layers >= -1, "--n-gpu-layers must be -1 (all) or a layer count");
        let config = EngineConfig {
            ctx_size: self.ctx_size,
            parallel: self.parallel,
            threads,
            batch_size: self.batch_size,
            gpu_layers: self.n_gpu_layers,
        };
        tracing::info!(model = %path.display(), ?config, "loading");
        Engine::start(&path, id, config)
    }

    /// The TPM given with --tpm, else the one next to the model if there is one.
    fn tpm(&self, engine: &Engine) -> anyhow::Result<Option<std::sync::Arc<conform::tpm::Hmm>>> {
        let path = match &self.tpm {
            Some(path) => path.clone(),
            None => {
                let (_, model) = manifest::resolve(self.model.as_deref())?;
                let path = conform::tpm::default_path(&model);
                if !path.exists() {
                    tracing::info!("no TPM at {}: format_mode \"lookahead\" is unavailable", path.display());
                    return Ok(None);
                }
                path
            }
        };
        let hmm = conform::tpm::load_for(&path, &engine.info.fingerprint)?;
        tracing::info!(tpm = %path.display(), hidden_states = hmm.hidden(), "lookahead TPM loaded");
        Ok(Some(std::sync::Arc::new(hmm)))
    }
}

fn main() -> anyhow::Result<()> {
    conform::allocator::keep_freed_memory();
    let cli = Cli::parse();
    // `ab` draws a progress bar on stderr; per-request logs of its own server would bury it.
    let default_level = if matches!(cli.command, Command::Ab(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ab(args) => ab(args),
        Command::Distill(args) => distill(args),
        Command::Generate { engine, prompt, max_tokens, temperature } => {
            let engine = engine.start()?;
            let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
            engine.submit(Job {
                prompt: engine.tokenize(&prompt, engine.info.add_bos, true),
                params: SamplingParams { temperature, ..SamplingParams::default() },
                max_tokens,
                stop: Vec::new(),
                constraint: None,
                free_first: None,
                events,
                admitted: None,
            })?;
            while let Some(event) = rx.blocking_recv() {
                match event {
                    Event::Token { text, .. } => {
                        print!("{text}");
                        std::io::stdout().flush()?;
                    }
                    Event::FormatStarts => {}
                    Event::Done(summary) => {
                        println!();
                        eprintln!("{summary:?}");
                        break;
                    }
                    Event::Error(e) => anyhow::bail!(e),
                }
            }
            Ok(())
        }
    }
}

fn distill(args: DistillArgs) -> anyhow::Result<()> {
    let (_, model_path) = manifest::resolve(args.engine.model.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| conform::tpm::default_path(&model_path));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let config = conform::distill::Config {
        data: args.data,
        samples_path: out.with_extension("samples.jsonl"),
        out,
        samples: args.samples,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        hidden: args.hidden,
        iterations: args.iterations,
        seed: args.seed,
        threads,
        resume: args.resume,
    };
    anyhow::ensure!(config.hidden >= 1 && config.hidden <= 4096, "--hidden must be 1..=4096");
    let engine = args.engine.start()?;
    let texts = conform::distill::sample(&engine, &config)?;
    let fingerprint = engine.info.fingerprint.clone();
    drop(engine);
    conform::distill::fit(&texts, &config, &fingerprint)?;
    eprintln!("wrote {}", config.out.display());
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.exit_with_stdin {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    if args.api_keys.iter().any(|k| k.trim().is_empty()) {
        anyhow::bail!("--api-key is empty (an unset variable?): refusing to start, since an empty key would turn authentication off");
    }
    let mut api_keys = args.api_keys.clone();
    if let Ok(keys) = std::env::var("CONFORM_API_KEY") {
        let before = api_keys.len();
        api_keys.extend(keys.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from));
        if api_keys.len() == before {
            anyhow::bail!(
                "CONFORM_API_KEY is set but holds no key: refusing to start, since that would turn authentication off"
            );
        }
    }
    let loopback = args.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) || args.host == "localhost";
    if api_keys.is_empty() && !loopback {
        tracing::warn!("serving on {} without an API key: anyone who can reach it can use it (--api-key)", args.host);
    }
    anyhow::ensure!(args.header_timeout >= 1, "--header-timeout must be at least 1 second");
    anyhow::ensure!(args.max_connections >= 1, "--max-connections must be at least 1");
    let check_hosts = loopback || !args.allowed_hosts.is_empty();
    let engine = args.engine.start()?;
    let config = server::ServerConfig {
        body_limit: args.max_body_bytes,
        api_keys,
        max_queue: args.max_queue,
        queue_timeout: std::time::Duration::from_secs(args.queue_timeout),
        limits: args.limits.limits(),
        request_limits: RequestLimits {
            max_n: args.max_n,
            max_messages: args.max_messages,
            max_completion_tokens: args.max_completion_tokens,
        },
        tpm: args.engine.tpm(&engine)?,
        allowed_hosts: check_hosts.then(|| args.allowed_hosts.clone()),
        chat_template: match &args.chat_template_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading --chat-template-file {}", path.display()))?,
            ),
            None => None,
        },
        chat_format: args.chat_format,
    };
    let state = server::AppState::new(engine, config)?;
    let limits = ConnectionLimits {
        max_connections: args.max_connections,
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
    };
    // Formats compile on the blocking pool; their depth is bounded, and this margin keeps a
    // bound we missed an error rather than a stack overflow, which aborts the process.
    let runtime = tokio::runtime::Builder::new_multi_thread().thread_stack_size(8 << 20).enable_all().build()?;
    runtime.block_on(async move {
        let stop_signal = shutdown_signal()?;
        let addr = format!("{}:{}", args.host, args.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!("serving {} on http://{}", state.engine.info.id, listener.local_addr()?);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let deadline = state.deadline.clone();
        let mut server = tokio::spawn(connections::serve(listener, server::app(state), limits, async {
            let _ = stop_rx.await;
        }));
        stop_signal.await;
        tracing::info!("shutting down: no new connections; {} s for requests in flight", args.shutdown_timeout);
        let _ = stop_tx.send(());
        match tokio::time::timeout(std::time::Duration::from_secs(args.shutdown_timeout), &mut server).await {
            Ok(joined) => joined?,
            Err(_) => {
                tracing::warn!("requests still running after {} s; cutting them and exiting", args.shutdown_timeout);
                deadline.pass();
                // A moment for cut streams to send their error event and close.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
            }
        }
        anyhow::Ok(())
    })
}

fn ab(args: AbArgs) -> anyhow::Result<()> {
    let config = ab::Config {
        suite: args.suite,
        data: args.data,
        arms: args.arms,
        prompt: args.prompt,
        limit: args.limit,
        concurrency: args.concurrency,
        seed: args.seed,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        format_options: args.format_options,
        tool_choice: args.tool_choice,
    };
    let tasks = ab::load_tasks(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (endpoint, model) = match &args.server {
            Some(url) => {
                let endpoint = Endpoint::new(url, args.api_key.clone())?;
                let model = match &args.engine.model {
                    Some(model) => model.clone(),
                    None => endpoint.first_model().await.with_context(|| format!("asking {url} for its models"))?,
                };
                (endpoint, model)
            }
            // Our own server, when no other is named: the same HTTP road as a foreign one.
            None => {
                let engine = args.engine.start()?;
                let queue = config.concurrency.max(64);
                let config = server::ServerConfig {
                    body_limit: 64 << 20,
                    api_keys: Vec::new(),
                    max_queue: queue,
                    queue_timeout: std::time::Duration::from_secs(24 * 3600),
                    limits: Limits::default(),
                    request_limits: RequestLimits::default(),
                    tpm: args.engine.tpm(&engine)?,
                    allowed_hosts: Some(Vec::new()),
                    chat_template: None,
                    chat_format: None,
                };
                let state = server::AppState::new(engine, config)?;
                let model = state.engine.info.id.clone();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let base = format!("http://{}", listener.local_addr()?);
                tokio::spawn(async move { axum::serve(listener, server::app(state)).await });
                (Endpoint::new(&base, None)?, model)
            }
        };
        let report = ab::run(&config, &tasks, &endpoint, &model).await?;
        report.write(&args.out)?;
        print!("{}", report.summary());
        println!("wrote {} and report.html", args.out.join("report.json").display());
        anyhow::Ok(())
    })
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when it is
/// first polled, so call it before announcing the server: a signal that arrives in between
/// must not fall back to the default action (killing streams mid-response).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

fn parse_chat_format(name: &str) -> Result<ChatFormat, String> {
    ChatFormat::named(name).ok_or_else(|| format!("unknown chat format `{name}`; known: {}", ChatFormat::names()))
}
