"""The PHI mask reads exactly as the server's (cases from contract/src/phi.rs)."""

import unittest

import _support  # noqa: F401  (import path)
from faxbot_plugin_kit.phi import may_hold_number, mask_numbers


class MaskNumbers(unittest.TestCase):
    def test_numbers_keep_only_their_last_four_digits_however_they_are_written(self):
        for written in ["+15551234567", "+1 (555) 123-4567", "1.555.123.4567", "(555) 123 4567", "5551234567"]:
            with self.subTest(written=written):
                self.assertEqual(mask_numbers("call %s now" % written), "call …4567 now")
                self.assertEqual(mask_numbers('"%s"' % written, 8), '"…4567"')

    def test_table(self):
        table = [
            ("busy at 555-1234", "busy at …1234"),
            ("12345", "…2345"),
            ("1234", "1234"),
            ("revision 42, port 8080, 1.5%", "revision 42, port 8080, 1.5%"),
            ("attempt 3 of 5 (code 1234)", "attempt 3 of 5 (code 1234)"),
            ("must be at most 3600000", "must be at most …0000"),
            ("no digits (here) + there", "no digits (here) + there"),
            ("GPL Ghostscript 10.00.0: error", "GPL Ghostscript 10.00.0: error"),
            ("from 127.0.0.1 in 1.25 s", "from 127.0.0.1 in 1.25 s"),
            ("", ""),
            ("ünï 12 ☎ 3", "ünï 12 ☎ 3"),
            ("to=+15551234567&x=1", "to=…4567&x=1"),
            ("two: 5551234567 and 5559876543", "two: …4567 and …6543"),
            ("request body larger than the limit of 48.0 MiB", "request body larger than the limit of 48.0 MiB"),
        ]
        for text, masked in table:
            with self.subTest(text=text):
                self.assertEqual(mask_numbers(text), masked)

    def test_may_hold_number_never_misses_what_masking_changes(self):
        import random

        rng = random.Random(7)
        alphabet = "0123456789 .()+-az_é☎\""
        for _ in range(5000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
            n = rng.randrange(1, 10)
            if not may_hold_number(text, n):
                self.assertEqual(mask_numbers(text, n), text, text)

    def test_may_hold_number_answers_for_the_usual_lines(self):
        self.assertTrue(may_hold_number("sending to +1 (555) 123-4567", 8))
        self.assertFalse(may_hold_number("job 3 of 5 sent in 1.25 s, 2 pages", 8))
        self.assertFalse(may_hold_number("", 1))
        self.assertTrue(may_hold_number("Fax 12345"))
        self.assertFalse(may_hold_number("Fax 1234"))


if __name__ == "__main__":
    unittest.main()
