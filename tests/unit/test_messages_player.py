"""The player's texts: the same keys in English and Simplified Chinese, and the page rendered in
the user's language with hostile values escaped."""

from __future__ import annotations

from types import SimpleNamespace

from pbx_recorder.web import messages_player
from pbx_recorder.web.i18n import translator
from pbx_recorder.web.player import SPEEDS
from pbx_recorder.web.render import environment


def test_both_languages_have_every_key() -> None:
    en, zh = messages_player.MESSAGES["en"], messages_player.MESSAGES["zh"]
    assert set(en) == set(zh) and all(k.startswith("player.") for k in en)
    assert all(zh[k] and zh[k] != en[k] for k in en if k not in ("player.back10", "player.fwd10"))


def test_page_in_chinese_escapes_what_it_shows() -> None:
    actor = SimpleNamespace(user=SimpleNamespace(name='x"><script>', role="supervisor"))
    html = environment().get_template("player.html").render(
        t=translator("zh"), lang="zh", actor=actor, csrf_token="tok", speeds=SPEEDS, cold="",
        rec={"recording_id": "r1", "format": "wav", "mode": "stereo", "duration_s": 60.0},
        call={"call_id": "c<1>"}, readable=True, may_download=False, may_mark=True, may_restore=False,
        is_admin=False, when=str)
    assert "播放器" in html and 'lang="zh-CN"' in html and "跳到客户讲话" in html
    ours = ('<script src="/static/player.js" defer></script>',
            '<script src="/static/console.js" defer></script>')
    assert "<script>" not in html.replace(ours[0], "").replace(ours[1], "")
    assert "c&lt;1&gt;" in html and 'data-user="x&#34;&gt;&lt;script&gt;"' in html
    assert 'id="download"' not in html and 'content="tok"' in html
