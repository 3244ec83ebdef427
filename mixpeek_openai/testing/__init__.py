"""Offline test kit: a fake Mixpeek API on loopback and a stub OpenAI API.

Both are also available as pytest fixtures (``fake_mixpeek``, ``stub_openai``) once the
package is installed.
"""

from mixpeek_openai.testing._contract import ContractViolation as ContractViolation
from mixpeek_openai.testing._contract import validate_response as validate_response
from mixpeek_openai.testing._fake_mixpeek import DEFAULT_API_KEY as DEFAULT_API_KEY
from mixpeek_openai.testing._fake_mixpeek import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE
from mixpeek_openai.testing._fake_mixpeek import ENDPOINTS as ENDPOINTS
from mixpeek_openai.testing._fake_mixpeek import FakeMixpeek as FakeMixpeek
from mixpeek_openai.testing._fake_mixpeek import RecordedRequest as RecordedRequest
from mixpeek_openai.testing._faults import Fault as Fault
from mixpeek_openai.testing._stub_model import StubToolCall as StubToolCall
from mixpeek_openai.testing._stub_model import StubTurn as StubTurn
from mixpeek_openai.testing._stub_model import StubUsage as StubUsage
from mixpeek_openai.testing._stub_openai import RecordedOpenAIRequest as RecordedOpenAIRequest
from mixpeek_openai.testing._stub_openai import StubOpenAI as StubOpenAI
