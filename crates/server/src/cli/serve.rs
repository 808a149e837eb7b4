use super::Failure;
use crate::app::{Application, shutdown_signal};
use crate::config::Config;

pub async fn run(config: Config) -> Result<u8, Failure> {
    let app = Application::build(config).await?;
    app.run_until(shutdown_signal())
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("server error: {e}"),
        })?;
    Ok(0)
}
