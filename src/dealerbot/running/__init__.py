"""Running bots: what a bot is and its context, the registry of bots and portals, one run's
lifecycle, the daily sync chain, messages to people, the operator text for statuses."""
