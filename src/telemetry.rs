//! Logging and tracing: `tracing` spans per connection and per command,
//! written as human-readable text or JSON lines, and exported over
//! OpenTelemetry (OTLP/HTTP) when the config names an endpoint.

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How long one OTLP export may take.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The SDK's batch exporter runs its exports on a thread of its own with a
/// plain executor, while hyper needs the tokio reactor: each request is
/// handed to the server's runtime and awaited from there.
#[derive(Debug, Clone)]
struct OnRuntime {
    handle: tokio::runtime::Handle,
    client: opentelemetry_http::hyper::HyperClient,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let client = self.client.clone();
        self.handle
            .spawn(async move { client.send_bytes(request).await })
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
    }
}

/// Flushes pending spans when dropped at exit.
pub struct Guard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.shutdown();
        }
    }
}

pub fn init(level: &str, json: bool, otlp_endpoint: Option<&str>) -> Result<Guard> {
    // RUST_LOG wins over the configured level, for debugging.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Logs go to stderr (stdout is for what a command prints), in colour
    // only on a terminal.
    let ansi = std::io::stderr().is_terminal();
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed()
    };
    let mut provider = None;
    let otel = match otlp_endpoint {
        None => None,
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            use opentelemetry_otlp::WithHttpConfig;
            let client = OnRuntime {
                handle: tokio::runtime::Handle::current(),
                client: opentelemetry_http::hyper::HyperClient::with_default_connector(
                    EXPORT_TIMEOUT,
                    None,
                ),
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_endpoint(endpoint)
                .build()
                .context("building the OTLP exporter")?;
            let p = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("roost")
                        .build(),
                )
                .build();
            let tracer = p.tracer("roost");
            provider = Some(p);
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .context("setting up logging")?;
    Ok(Guard(provider))
}
