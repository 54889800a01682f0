import pytest

from selfiter import plugins
from tests.core import toy_plugin


@pytest.fixture(scope="session", autouse=True)
def toy_registered():
    name = plugins.register_plugin(toy_plugin, name="toy")
    yield name
    plugins.unregister_plugin("toy")
