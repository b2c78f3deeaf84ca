"""Texts of the "My account" page."""

MESSAGES = {
    "en": {
        "account.title": "My account",
        "account.name": "Name",
        "account.role": "Role",
        "account.teams": "Teams",
        "account.totp": "Second factor (TOTP)",
        "account.totp.enrolled": "A second factor is set up. An admin can reset it if you lose it.",
        "account.totp.unavailable": "The second factor is not configured on this service.",
        "account.totp.optional": "Optional: protect your login with codes from an authenticator app.",
        "account.totp.required": "Your role requires a second factor.",
        "account.totp.start": "Set up a second factor",
        "common.nav.account": "My account",
    },
    "zh": {
        "account.title": "我的账户",
        "account.name": "用户名",
        "account.role": "角色",
        "account.teams": "团队",
        "account.totp": "第二重验证（TOTP）",
        "account.totp.enrolled": "已设置第二重验证。如丢失，可由管理员重置。",
        "account.totp.unavailable": "本服务未配置第二重验证。",
        "account.totp.optional": "可选：用身份验证器应用的验证码保护您的登录。",
        "account.totp.required": "您的角色要求第二重验证。",
        "account.totp.start": "设置第二重验证",
        "common.nav.account": "我的账户",
    },
}
