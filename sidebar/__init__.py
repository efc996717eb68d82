"""The chat sidebar page, JS-SDK signatures and staff sign-in."""
