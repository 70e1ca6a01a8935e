import pytest

from tests.support import CorralProcess, lambda_client


@pytest.fixture(scope="session")
def corral(tmp_path_factory):
    """One shared server for tests that only need a working endpoint."""
    # CORRAL_TEST_SECRET lets tests check that a function cannot see the server's environment.
    env = {"CORRAL_TEST_SECRET": "host-only"}
    with CorralProcess(tmp_path_factory.mktemp("corral"), env=env) as proc:
        yield proc


@pytest.fixture(scope="session")
def corral_url(corral):
    return corral.url


@pytest.fixture(scope="session")
def lam(corral_url):
    return lambda_client(corral_url)
