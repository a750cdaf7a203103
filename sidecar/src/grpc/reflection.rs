//! The upstream's gRPC methods from its server reflection service, so that they, and nothing a
//! client sends, are the `grpc_service`/`grpc_method` label set (`grpc_reflection` in the TOML
//! file), as the OpenAPI document's paths are the `handler` set.
//!
//! Over h2c to the upstream: `list_services`, then `file_containing_symbol` for each service, and
//! the methods (with their streaming directions) read from the `FileDescriptorProto`s that come
//! back. `grpc.reflection.v1` first, `v1alpha` when v1 is `UNIMPLEMENTED`: their messages are the
//! same (same fields and numbers under another package), so v1's types serve both and only the
//! path differs. The reflection service itself is left out of the set (tools' traffic, counted
//! under `none`); everything else the server lists, `grpc.health.v1.Health` included, is kept.
//!
//! When to ask, and what a failure means: [`MethodLoader`](super::methods::MethodLoader).

use std::{collections::HashMap, time::Duration};

use crate::config::Upstream;
use http::uri::PathAndQuery;
use prost::Message;
use prost_types::FileDescriptorProto;
use tonic::{Code, Status, transport::Endpoint};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, ServerReflectionResponse, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse,
};

const V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
/// Services left out of the label set.
const REFLECTION_PACKAGE: &str = "grpc.reflection.";
/// One attempt's limit, from connecting to the last descriptor.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// One method the upstream serves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ReflectedMethod {
    /// The service's full name, `package.Service`.
    pub service: String,
    pub method: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

impl ReflectedMethod {
    /// The request path of its calls: `/package.Service/Method`.
    pub(crate) fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}

/// Why the list could not be had. Connecting and calling may work on a later attempt; the others
/// will not.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReflectionError {
    #[error("cannot reach {upstream} over h2c for gRPC server reflection: {reason}")]
    Connect { upstream: String, reason: String },
    #[error(
        "{upstream} does not serve gRPC server reflection (grpc.reflection.v1 and v1alpha answer UNIMPLEMENTED)"
    )]
    Unimplemented { upstream: String },
    #[error("gRPC server reflection on {upstream} failed: {reason}")]
    Call { upstream: String, reason: String },
    #[error("gRPC server reflection on {upstream} answered what cannot be used: {reason}")]
    Invalid { upstream: String, reason: String },
}

impl ReflectionError {
    pub(super) fn is_transient(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Call { .. })
    }
}

/// Asks the upstream once for its methods, sorted.
///
/// # Errors
/// See [`ReflectionError`].
pub(crate) async fn list_methods(
    upstream: &Upstream,
    connect_timeout: Duration,
) -> Result<Vec<ReflectedMethod>, ReflectionError> {
    let target = upstream.to_string();
    let attempt = async {
        let channel = Endpoint::from_shared(target.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(connect_timeout)
            .connect()
            .await
            .map_err(chain)?;
        Ok(converse(channel, &target).await)
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(Ok(listed)) => listed,
        Ok(Err(reason)) => Err(ReflectionError::Connect {
            upstream: target,
            reason,
        }),
        Err(_) => Err(ReflectionError::Call {
            upstream: target,
            reason: format!("no answer within {ATTEMPT_TIMEOUT:?}"),
        }),
    }
}

async fn converse(
    channel: tonic::transport::Channel,
    upstream: &str,
) -> Result<Vec<ReflectedMethod>, ReflectionError> {
    let failed = |status: Status| match status.code() {
        Code::Unimplemented => ReflectionError::Unimplemented {
            upstream: upstream.into(),
        },
        code => ReflectionError::Call {
            upstream: upstream.into(),
            reason: format!("{code:?}: {}", status.message()),
        },
    };
    let invalid = |reason: String| ReflectionError::Invalid {
        upstream: upstream.into(),
        reason,
    };
    let list = vec![request(MessageRequest::ListServices(String::new()))];
    let (path, answers) = match exchange(&channel, V1, list.clone()).await {
        Err(status) if status.code() == Code::Unimplemented => {
            (V1ALPHA, exchange(&channel, V1ALPHA, list).await)
        }
        answers => (V1, answers),
    };
    let services = services(answers.map_err(failed)?).map_err(invalid)?;
    let symbols = (services.iter())
        .map(|s| request(MessageRequest::FileContainingSymbol(s.clone())))
        .collect();
    let answers = exchange(&channel, path, symbols).await.map_err(failed)?;
    methods(&services, answers).map_err(invalid)
}

fn request(message: MessageRequest) -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    }
}

/// One `ServerReflectionInfo` stream: `requests`, then every answer until the server ends it.
async fn exchange(
    channel: &tonic::transport::Channel,
    path: &'static str,
    requests: Vec<ServerReflectionRequest>,
) -> Result<Vec<ServerReflectionResponse>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(chain(e)))?;
    let mut answers = grpc
        .streaming(
            tonic::Request::new(futures_util::stream::iter(requests)),
            PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::default(),
        )
        .await?
        .into_inner();
    let mut all = Vec::new();
    while let Some(answer) = answers.message().await? {
        all.push(answer);
    }
    Ok(all)
}

/// The listed services, the reflection service left out.
fn services(answers: Vec<ServerReflectionResponse>) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for answer in answers {
        match answer.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                names.extend(list.service.into_iter().map(|s| s.name));
            }
            other => return Err(format!("list_services: {}", unexpected(other))),
        }
    }
    names.retain(|name| !name.starts_with(REFLECTION_PACKAGE));
    names.sort();
    names.dedup();
    Ok(names)
}

/// The methods of `services`, from every file descriptor the answers carry (a server may send a
/// file once per stream, so one answer's file can describe another's symbol).
fn methods(
    services: &[String],
    answers: Vec<ServerReflectionResponse>,
) -> Result<Vec<ReflectedMethod>, String> {
    let mut described: HashMap<String, Vec<ReflectedMethod>> = HashMap::new();
    for answer in answers {
        let files = match answer.message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => files.file_descriptor_proto,
            other => return Err(format!("file_containing_symbol: {}", unexpected(other))),
        };
        for bytes in files {
            let file = FileDescriptorProto::decode(bytes.as_slice())
                .map_err(|e| format!("a file descriptor does not decode: {e}"))?;
            for service in &file.service {
                let name = match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                };
                let methods = (service.method.iter())
                    .map(|m| ReflectedMethod {
                        service: name.clone(),
                        method: m.name().to_owned(),
                        client_streaming: m.client_streaming(),
                        server_streaming: m.server_streaming(),
                    })
                    .collect();
                described.entry(name).or_insert(methods);
            }
        }
    }
    let mut methods = Vec::new();
    for service in services {
        let found = described
            .remove(service)
            .ok_or_else(|| format!("no file descriptor describes the listed service {service}"))?;
        methods.extend(found);
    }
    methods.sort();
    methods.dedup();
    Ok(methods)
}

/// An error with its causes: tonic's transport errors say little at the top.
fn chain(error: tonic::transport::Error) -> String {
    format!("{:#}", anyhow::Error::new(error))
}

fn unexpected(answer: Option<MessageResponse>) -> String {
    match answer {
        Some(MessageResponse::ErrorResponse(e)) => {
            format!("error {} {:?}", e.error_code, e.error_message)
        }
        _ => "an answer of another kind".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost_types::{MethodDescriptorProto, ServiceDescriptorProto};
    use tonic_reflection::pb::v1::FileDescriptorResponse;

    use super::*;

    /// A file with one service of one method.
    fn file(package: &str, service: &str, method: &str, streams: bool) -> Vec<u8> {
        let method = MethodDescriptorProto {
            name: Some(method.into()),
            server_streaming: Some(streams),
            ..Default::default()
        };
        let service = ServiceDescriptorProto {
            name: Some(service.into()),
            method: vec![method],
            ..Default::default()
        };
        let package = (!package.is_empty()).then(|| package.into());
        let service = vec![service];
        (FileDescriptorProto {
            package,
            service,
            ..Default::default()
        })
        .encode_to_vec()
    }

    fn answer(file_descriptor_proto: Vec<Vec<u8>>) -> ServerReflectionResponse {
        let files = FileDescriptorResponse {
            file_descriptor_proto,
        };
        let message_response = Some(MessageResponse::FileDescriptorResponse(files));
        ServerReflectionResponse {
            message_response,
            ..Default::default()
        }
    }

    #[test]
    fn methods_come_from_any_answers_descriptors_and_a_missing_one_is_an_error() {
        // The second answer is empty: its file came with the first (sent once per stream).
        let both = vec![file("p", "A", "Get", false), file("", "B", "Watch", true)];
        let services = ["B".to_owned(), "p.A".to_owned()];
        let methods = super::methods(&services, vec![answer(both), answer(vec![])]).unwrap();
        let paths: Vec<(String, bool)> = (methods.iter())
            .map(|m| (m.path(), m.server_streaming))
            .collect();
        assert_eq!(
            paths,
            [("/B/Watch".into(), true), ("/p.A/Get".into(), false)]
        );
        let lone = vec![answer(vec![file("p", "A", "Get", false)])];
        let error = super::methods(&services, lone).unwrap_err();
        assert!(error.contains("listed service B"), "{error}");
    }
}
