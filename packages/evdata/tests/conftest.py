from evdata.testing import register_hypothesis_profiles

register_hypothesis_profiles()
