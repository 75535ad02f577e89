"""Who may do what: API keys, principals and scopes, paths confined to the workspace, outbound URL checks."""
