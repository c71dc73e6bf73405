"""Reading a study: tables of studies, trials and the front, the HTML report, bands, estimates, re-pricing on another device."""
