//! The smallest possible `lambda_http` function, built beside the router by `bench/coldstart` so
//! the router's cold start is compared with a baseline compiled in the same run and profile.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
