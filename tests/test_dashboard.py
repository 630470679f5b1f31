"""optuna-dashboard opens an ablate study database as it is."""

from _worker import _StubProfile, recording_runner
from ablate.scheduler import run_study
from ablate.spec import load_spec
from ablate.storage import open_storage
from conftest import TINY_SPEC, write_spec


def _spec(tmp_path, seeds):
    text = TINY_SPEC.format(name="tiny", datasets='"factoid"').replace("seeds = [0, 1]", f"seeds = {seeds}")
    return load_spec(write_spec(tmp_path, "tiny", text))


def test_optuna_dashboard_opens_the_study_database(tmp_path):
    import io
    import json

    import optuna_dashboard

    spec = _spec(tmp_path, seeds="[0]")
    url = f"sqlite:///{tmp_path / 'd.db'}"
    run_study(spec, _StubProfile(), open_storage(url), runner=recording_runner(str(tmp_path / "log"), 0))
    app = optuna_dashboard.wsgi(url)
    status = {}
    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/api/studies", "QUERY_STRING": "",
                         "SERVER_NAME": "localhost", "SERVER_PORT": "8080", "wsgi.url_scheme": "http",
                         "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO()},
                        lambda s, headers, exc_info=None: status.setdefault("code", s)))
    assert status["code"].startswith("200")
    names = [s["study_name"] for s in json.loads(body)["study_summaries"]]
    assert names == ["tiny@mini"]
