//! The gRPC transport: tonic servers for `MessageApi` and `KeyApi` that hand
//! each request to [`MessageService`] / [`KeyService`] with the peer's IP as
//! the rate-limited client.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use xmtp_proto::xmtp::{
    key_api::v1::{
        key_api_server::KeyApi, ClaimOneTimeKeysRequest, ClaimOneTimeKeysResponse,
        CountOneTimeKeysRequest, CountOneTimeKeysResponse, GetInstallationsRequest,
        GetInstallationsResponse, PublishRevocationRequest, PublishRevocationResponse,
        RegisterInstallationRequest, RegisterInstallationResponse, UploadOneTimeKeysRequest,
        UploadOneTimeKeysResponse,
    },
    message_api::v1::{
        message_api_server::MessageApi, BatchQueryRequest, BatchQueryResponse, Envelope,
        PublishRequest, PublishResponse, QueryRequest, QueryResponse, SubscribeAllRequest,
        SubscribeRequest,
    },
};

use crate::{
    auth::AUTHORIZATION,
    hub::{Subscription, SubscriptionError},
    service::{ApiError, Client, KeyService, MessageService},
};

/// A boxed stream of envelopes, as the generated server wants it.
pub type EnvelopeStream = Pin<Box<dyn Stream<Item = Result<Envelope, Status>> + Send>>;

fn client<T>(req: &Request<T>) -> Client {
    req.remote_addr().map(|a| a.ip())
}

/// The envelopes of a subscription; a lag ends it with ResourceExhausted.
pub(crate) fn envelope_stream(
    service: MessageService,
    sub: Subscription,
) -> impl Stream<Item = Result<Envelope, ApiError>> {
    sub.map(move |item| match item {
        Ok(env) => Ok(Envelope::clone(&env)),
        Err(e @ SubscriptionError::Lagged(_)) => {
            service.note_lagged();
            tracing::info!(error = %e, "subscriber cut off");
            Err(ApiError::ResourceExhausted(e.to_string()))
        }
    })
}

/// `xmtp.message_api.v1.MessageApi` over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcMessageApi(pub MessageService);

#[tonic::async_trait]
impl MessageApi for GrpcMessageApi {
    async fn publish(
        &self,
        req: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let c = client(&req);
        // A value that is not visible ASCII is passed as "", which the
        // authenticator refuses as malformed.
        let authorization = req
            .metadata()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let (_, _, message) = req.into_parts();
        Ok(Response::new(
            self.0.publish(c, authorization.as_deref(), message).await?,
        ))
    }

    type SubscribeStream = EnvelopeStream;

    async fn subscribe(
        &self,
        req: Request<SubscribeRequest>,
    ) -> Result<Response<EnvelopeStream>, Status> {
        let c = client(&req);
        let sub = self.0.subscribe(c, req.into_inner())?;
        Ok(Response::new(Box::pin(
            envelope_stream(self.0.clone(), sub).map(|r| r.map_err(Status::from)),
        )))
    }

    type Subscribe2Stream = EnvelopeStream;

    async fn subscribe2(
        &self,
        req: Request<Streaming<SubscribeRequest>>,
    ) -> Result<Response<EnvelopeStream>, Status> {
        let c = client(&req);
        let mut updates = req.into_inner();
        let sub = self.0.subscribe_updatable(c, SubscribeRequest::default())?;
        let handle = sub.handle();
        let (err_tx, err_rx) = mpsc::channel::<Result<Envelope, Status>>(1);
        let service = self.0.clone();
        // Each request on the inbound stream replaces the topic set. A bad
        // request ends the subscription with its error; the inbound side
        // closing leaves the subscription running (the error side of the
        // merged stream just ends) until the client cancels.
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                let result =
                    update.and_then(|u| service.interest(u.content_topics).map_err(Status::from));
                match result {
                    Ok(interest) => handle.set_interest(interest),
                    Err(status) => {
                        let _ = err_tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        let envelopes = envelope_stream(self.0.clone(), sub).map(|r| r.map_err(Status::from));
        let merged = futures::stream::select(envelopes, ReceiverStream::new(err_rx));
        Ok(Response::new(Box::pin(merged)))
    }

    type SubscribeAllStream = EnvelopeStream;

    async fn subscribe_all(
        &self,
        req: Request<SubscribeAllRequest>,
    ) -> Result<Response<EnvelopeStream>, Status> {
        let sub = self.0.subscribe_all(client(&req))?;
        Ok(Response::new(Box::pin(
            envelope_stream(self.0.clone(), sub).map(|r| r.map_err(Status::from)),
        )))
    }

    async fn query(&self, req: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(self.0.query(c, req.into_inner()).await?))
    }

    async fn batch_query(
        &self,
        req: Request<BatchQueryRequest>,
    ) -> Result<Response<BatchQueryResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.batch_query(c, req.into_inner()).await?,
        ))
    }
}

/// `xmtp.key_api.v1.KeyApi` over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcKeyApi(pub KeyService);

#[tonic::async_trait]
impl KeyApi for GrpcKeyApi {
    async fn register_installation(
        &self,
        req: Request<RegisterInstallationRequest>,
    ) -> Result<Response<RegisterInstallationResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.register_installation(c, req.into_inner()).await?,
        ))
    }

    async fn upload_one_time_keys(
        &self,
        req: Request<UploadOneTimeKeysRequest>,
    ) -> Result<Response<UploadOneTimeKeysResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.upload_one_time_keys(c, req.into_inner()).await?,
        ))
    }

    async fn count_one_time_keys(
        &self,
        req: Request<CountOneTimeKeysRequest>,
    ) -> Result<Response<CountOneTimeKeysResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.count_one_time_keys(c, req.into_inner()).await?,
        ))
    }

    async fn get_installations(
        &self,
        req: Request<GetInstallationsRequest>,
    ) -> Result<Response<GetInstallationsResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.get_installations(c, req.into_inner()).await?,
        ))
    }

    async fn claim_one_time_keys(
        &self,
        req: Request<ClaimOneTimeKeysRequest>,
    ) -> Result<Response<ClaimOneTimeKeysResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.claim_one_time_keys(c, req.into_inner()).await?,
        ))
    }

    async fn publish_revocation(
        &self,
        req: Request<PublishRevocationRequest>,
    ) -> Result<Response<PublishRevocationResponse>, Status> {
        let c = client(&req);
        Ok(Response::new(
            self.0.publish_revocation(c, req.into_inner()).await?,
        ))
    }
}
