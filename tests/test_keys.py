"""The matching keys: the shortcut for North American phone numbers gives what phonenumbers
gives, for every spelling it takes."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from db.models.keys import _e164, _nanp, phone_key

SPELLINGS = st.text(alphabet="+0123456789 ()-.x/", min_size=1, max_size=20)
NANP = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["", "+1", "+1 ", "1 ", "+", "+4", "+7 ", "+44 ", "+52"]),
    st.sampled_from(["", "(", " "]),
    st.integers(0, 999).map("{:03d}".format),
    st.sampled_from([") ", "-", ".", " ", ""]),
    st.integers(0, 9_999_999).map("{:07d}".format),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(SPELLINGS, NANP), st.sampled_from(["US", "CA", "GB", "DE"]))
def test_the_north_american_shortcut_agrees_with_phonenumbers(value: str, region: str) -> None:
    fast = _nanp(value.strip(), region)
    if fast is not None:
        assert fast == _e164(value.strip(), region)


def test_phone_keys_of_one_number_written_differently_are_equal() -> None:
    spellings = ["(512) 555-0100", "512.555.0100", "+1 512 555 0100", "+15125550100"]
    assert {phone_key(s, "US") for s in spellings} == {"+15125550100"}
    assert phone_key("020 7946 0958", "GB") == "+442079460958"
    assert phone_key("not a phone", "US") == ""
    number = phonenumbers.parse("+1 512 555 0100")
    assert phone_key("+1 512 555 0100", "DE") == phonenumbers.format_number(
        number, phonenumbers.PhoneNumberFormat.E164
    )
