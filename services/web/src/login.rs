//! The sign-in page of the town and the province: paste the access token
//! (mã truy cập) an administrator made with `token create`; the service
//! then keeps it in an HttpOnly, SameSite=Strict cookie
//! (`treem_auth::session`).

use crate::Lang;
use crate::html::{self, Page, esc};

/// The page; `error` is shown above the form when a sign-in was refused.
pub fn page(lang: Lang, place: &str, next: &str, error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"form-error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    let body = format!(
        "<section class=\"login\"><h1>{h}</h1><p>{intro}</p>{err}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{next}\"><input type=\"hidden\" name=\"lang\" value=\"{code}\"><div class=\"field\"><label for=\"token\">{label}</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required spellcheck=\"false\" placeholder=\"treem_…\"><span class=\"hint\">{hint}</span></div><button type=\"submit\">{submit}</button></form></section>",
        h = lang.t("Đăng nhập", "Sign in"),
        intro = lang.t(
            "Nhập mã truy cập do quản trị viên cấp. Trình duyệt sẽ giữ mã trong 12 giờ; bấm «Đăng xuất» khi dùng máy chung.",
            "Enter the access token your administrator gave you. The browser keeps it for 12 hours; sign out on a shared computer."
        ),
        next = esc(next),
        code = lang.code(),
        label = lang.t("Mã truy cập", "Access token"),
        hint = lang.t("Dạng treem_…; vai trò người xem, cán bộ hoặc quản trị.", "Looks like treem_…; role viewer, officer or admin."),
        submit = lang.t("Đăng nhập", "Sign in"),
    );
    let other = format!("/login{}", html::query(&[("next", next), ("lang", lang.other().code())]));
    html::page(&Page {
        lang,
        title: format!("{} — {}", place, lang.t("Đăng nhập", "Sign in")),
        place: place.into(),
        subtitle: lang.t("Theo dõi kế hoạch bảo vệ, chăm sóc trẻ em", "Child protection plan monitoring").into(),
        other_lang_href: Some(other),
        body,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_posts_the_token_and_where_to_go_back() {
        let p = page(Lang::Vi, "Thị xã Bình Long", "/dashboard?year=2024", Some("Mã không hợp lệ"));
        assert!(p.contains("action=\"/login\"") && p.contains("name=\"token\" type=\"password\""));
        assert!(p.contains("value=\"/dashboard?year=2024\"") && p.contains("Mã không hợp lệ") && p.contains("Mã truy cập"));
    }
}
