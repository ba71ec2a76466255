"""The class server: the lab of app.py behind a browser cookie, for class mode.

    TLLAB_CLASS_KEY='a secret of 16+ characters' streamlit run classroom.py

(README: "Teaching a class" gives the HTTPS form a webcam needs.) Streamlit runs `app.py` as always; this
entry point only adds the middleware that gives each browser its HttpOnly identity cookie
(dashboard/browser_cookie.py), which Streamlit's own scripts cannot set.
"""

import streamlit as st
from starlette.middleware import Middleware

from dashboard.browser_cookie import BrowserCookieMiddleware

app = st.App("app.py", middleware=[Middleware(BrowserCookieMiddleware)])
