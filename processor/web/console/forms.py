"""The console's forms: each carries a CSRF token (Flask-WTF), and each change asks for a reason."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from processor.domain.accounts import AccountStatus

REASON = [DataRequired(message="say why; it goes into the audit log"), Length(max=500)]


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


class LogoutForm(FlaskForm):
    pass


class StatusForm(FlaskForm):
    status = SelectField("New status", choices=[s.value for s in AccountStatus])
    reason = StringField("Reason", validators=REASON)


class ReverseForm(FlaskForm):
    reason = StringField("Reason", validators=REASON)


class ResendForm(FlaskForm):
    pass


class ResolveForm(FlaskForm):
    reason = StringField("Reason", validators=REASON)
