# Credential models arrive with the credentials issue (#5).
