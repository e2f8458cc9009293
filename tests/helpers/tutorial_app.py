"""A classic Flask-JWT-Extended tutorial's app ("What are the steps to implement JWT authentication
in a Flask web application?"), on Quart: only the imports and async/await changed.

The tutorial's snippets, put together in its order: the set-up, the secret and
``JWT_ACCESS_TOKEN_EXPIRES = False``, /register and /login, /protected under
``jwt_required``, and the refresh-token step (login returns both tokens; /token/refresh
under the 3.x ``jwt_refresh_token_required``). Its /register body is a comment; here it
answers 201 so the route exists. Nothing else is added: no user store, as in the article.
"""

# ruff: noqa: I001 - the article's import order is kept
from __future__ import annotations

from quart import Quart
from quart_app.jwt import JWTManager

app = Quart(__name__)
jwt = JWTManager(app)

app.config["JWT_SECRET_KEY"] = "your-secret-key"
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = False

from quart import request, jsonify  # noqa: E402
from quart_app.jwt import create_access_token  # noqa: E402


@app.route("/register", methods=["POST"])
async def register():  # type: ignore[no-untyped-def]
    # save username and password to the database
    return jsonify(msg="registered"), 201


from quart_app.jwt import jwt_required, get_jwt_identity  # noqa: E402


@app.route("/protected", methods=["GET"])
@jwt_required
async def protected():  # type: ignore[no-untyped-def]
    current_user = get_jwt_identity()

    return jsonify(logged_in_as=current_user), 200


from quart_app.jwt import create_refresh_token, jwt_refresh_token_required  # noqa: E402


@app.route("/login", methods=["POST"])
async def login():  # type: ignore[no-untyped-def]
    username = (await request.json).get("username", None)
    password = (await request.json).get("password", None)  # noqa: F841
    # authenticate username and password
    # if valid, create access token
    access_token = await create_access_token(identity=username)
    refresh_token = await create_refresh_token(identity=username)
    return jsonify(access_token=access_token, refresh_token=refresh_token), 200


@app.route("/token/refresh", methods=["POST"])
@jwt_refresh_token_required
async def refresh():  # type: ignore[no-untyped-def]
    current_user = get_jwt_identity()
    access_token = await create_access_token(identity=current_user)
    return jsonify(access_token=access_token), 200
