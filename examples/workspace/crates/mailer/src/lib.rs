//! Toy mail library. It exists so that `notify` has a *transitive* local path
//! dependency: notify -> mailer -> common.

/// Marker appended to notify's `GET /` body. Editing it must rebuild notify.
pub const MAILER_TAG: &str = "mailer-1";

/// Render a (fake) notification e-mail.
pub fn render(to: &str, service: &str) -> String {
    format!(
        "To: {to}\nX-Mailer: {MAILER_TAG}/{}\n\n{}\n",
        common::VERSION_TAG,
        common::greeting(service)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn render_mentions_tags() {
        let mail = super::render("dev@example.com", "notify");
        assert!(mail.contains(super::MAILER_TAG));
        assert!(mail.contains("hello from notify"));
    }
}
